//! Progress bars for long work, drawn on stderr only when it is a terminal (indicatif hides
//! them otherwise, so logs and CI output stay clean).

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting `what` up to `total`.
pub fn bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

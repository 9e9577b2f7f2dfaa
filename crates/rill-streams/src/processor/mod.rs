//! The processor API: user code with access to named state stores, forwarding records to its
//! children, and punctuation on stream time or wall-clock time. The DSL's operators are
//! processors too.
//!
//! ```
//! use rill_streams::{Processor, ProcessorContext, Record, Result};
//!
//! /// Forwards each value's length.
//! struct Lengths;
//!
//! impl Processor<String, String, String, usize> for Lengths {
//!     fn process(&mut self, ctx: &mut ProcessorContext<'_, String, usize>, record: Record<String, String>) -> Result<()> {
//!         let length = record.value.len();
//!         ctx.forward(record.with_value(length))
//!     }
//! }
//! ```

mod context;

pub use context::{InitContext, ProcessorContext, PunctuationType, PunctuatorId};

use crate::error::Result;
use crate::record::Record;

/// A node of a topology that receives records of `KIn`/`VIn` and forwards records of
/// `KOut`/`VOut` to its children. One instance per task; a task calls it from one thread.
pub trait Processor<KIn, VIn, KOut, VOut>: 'static {
    /// Called once before the first record: schedule punctuators, fetch stores (or have
    /// them handed over when the processor is built: `KStream::process_built`).
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Processes one record.
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<()>;

    /// A punctuator scheduled in `init` is due; `timestamp` is the stream time or wall-clock
    /// time that triggered it.
    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        punctuator: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        let _ = (ctx, punctuator, timestamp);
        Ok(())
    }

    /// Called when the task closes.
    fn close(&mut self) {}
}

/// A processor built in `init`, once its stores can be handed to it: the DSL's stateful
/// operators hold their stores as plain fields rather than `Option`s filled in `init` (and
/// skipped over while empty). Used through `KStream::add_built` and, for user processors,
/// `KStream::process_built`.
pub(crate) struct BuiltInInit<F, P> {
    build: F,
    built: Option<P>,
    /// The processor's node, for the error if a record arrives before `init`.
    node: String,
}

impl<F, P> BuiltInInit<F, P> {
    fn new(node: impl Into<String>, build: F) -> Self {
        BuiltInInit {
            build,
            built: None,
            node: node.into(),
        }
    }

    /// A supplier for `GraphBuilder::add_processor`: each task's instance of node `node` is
    /// made by `build` when it is initialised.
    pub(crate) fn supplier(node: String, build: F) -> impl Fn() -> Self + Send + Sync + 'static
    where
        F: Clone + Send + Sync + 'static,
    {
        move || BuiltInInit::new(node.clone(), build.clone())
    }

    fn built(&mut self) -> Result<&mut P> {
        let node = &self.node;
        self.built
            .as_mut()
            .ok_or_else(|| crate::error::StreamsError::NotInitialised {
                node: node.to_string(),
            })
    }
}

impl<KIn, VIn, KOut, VOut, F, P> Processor<KIn, VIn, KOut, VOut> for BuiltInInit<F, P>
where
    F: Fn(&mut InitContext<'_>) -> Result<P> + 'static,
    P: Processor<KIn, VIn, KOut, VOut>,
{
    fn init(&mut self, ctx: &mut InitContext<'_>) -> Result<()> {
        let mut processor = (self.build)(ctx)?;
        processor.init(ctx)?;
        self.built = Some(processor);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        record: Record<KIn, VIn>,
    ) -> Result<()> {
        self.built()?.process(ctx, record)
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, KOut, VOut>,
        punctuator: PunctuatorId,
        timestamp: i64,
    ) -> Result<()> {
        self.built()?.punctuate(ctx, punctuator, timestamp)
    }

    fn close(&mut self) {
        if let Some(processor) = &mut self.built {
            processor.close();
        }
    }
}

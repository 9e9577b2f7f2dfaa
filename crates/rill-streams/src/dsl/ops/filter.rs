use crate::error::Result;
use crate::functions::Predicate;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;

/// Forwards records for which the predicate answers `keep`.
pub(crate) struct Filter<K, V> {
    pub predicate: Predicate<K, V>,
    pub keep: bool,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, V, K, V> for Filter<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        if (self.predicate)(&record.key, &record.value) == self.keep {
            ctx.forward(record)?;
        }
        Ok(())
    }
}

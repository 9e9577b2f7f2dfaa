use crate::error::Result;
use crate::functions::Action;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;

/// Calls an action on each record and forwards it unchanged (peek; for-each when it has no
/// children).
pub(crate) struct Peek<K, V> {
    pub action: Action<K, V>,
}

impl<K: Clone + 'static, V: Clone + 'static> Processor<K, V, K, V> for Peek<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        (self.action)(&record.key, &record.value);
        ctx.forward(record)
    }
}

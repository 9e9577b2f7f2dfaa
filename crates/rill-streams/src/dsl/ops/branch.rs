use crate::error::Result;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;

/// A predicate of a branch.
pub(crate) type Predicate<K, V> = std::sync::Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Sends each record to the first branch whose predicate accepts it. Branch `i` is the `i`-th
/// child; branches are attached in predicate order.
pub(crate) struct Branch<K, V> {
    pub predicates: Vec<Predicate<K, V>>,
}

impl<K: 'static, V: 'static> Processor<K, V, K, V> for Branch<K, V> {
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        record: Record<K, V>,
    ) -> Result<()> {
        match self
            .predicates
            .iter()
            .position(|p| p(&record.key, &record.value))
        {
            Some(branch) => ctx.forward_to(branch, record),
            None => Ok(()),
        }
    }
}

use crate::error::Result;
use crate::functions::FlatMapper;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;

/// Turns each record into any number of records.
pub(crate) struct FlatMap<K, V, K2, V2> {
    pub mapper: FlatMapper<K, V, K2, V2>,
}

impl<K, V, K2, V2> Processor<K, V, K2, V2> for FlatMap<K, V, K2, V2>
where
    K: 'static,
    V: 'static,
    K2: Clone + 'static,
    V2: Clone + 'static,
{
    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K2, V2>,
        record: Record<K, V>,
    ) -> Result<()> {
        let Record {
            key,
            value,
            timestamp,
            headers,
        } = record;
        for (key, value) in (self.mapper)(key, value) {
            ctx.forward(Record {
                key,
                value,
                timestamp,
                headers: headers.clone(),
            })?;
        }
        Ok(())
    }
}

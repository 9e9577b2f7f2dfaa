use crate::error::Result;
use crate::functions::KeyValueMapper;
use crate::processor::{Processor, ProcessorContext};
use crate::record::Record;

/// Turns each record into one record of other types (map, map-values, select-key).
pub(crate) struct Map<K, V, K2, V2> {
    pub mapper: KeyValueMapper<K, V, K2, V2>,
}

impl<K, V, K2, V2> Processor<K, V, K2, V2> for Map<K, V, K2, V2>
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
        let (key, value) = (self.mapper)(key, value);
        ctx.forward(Record {
            key,
            value,
            timestamp,
            headers,
        })
    }
}

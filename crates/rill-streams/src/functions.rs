//! Shapes of the user functions the DSL stores, shared between operators.

use std::sync::Arc;

use crate::record::Record;

/// Decides whether a record passes.
pub(crate) type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;
/// Turns a key and value into another key and value.
pub(crate) type KeyValueMapper<K, V, K2, V2> = Arc<dyn Fn(K, V) -> (K2, V2) + Send + Sync>;
/// Turns a key and value into any number of keys and values.
pub(crate) type FlatMapper<K, V, K2, V2> = Arc<dyn Fn(K, V) -> Vec<(K2, V2)> + Send + Sync>;
/// Looks at a record.
pub(crate) type Action<K, V> = Arc<dyn Fn(&K, &V) + Send + Sync>;
/// Derives a key from a record.
pub(crate) type KeySelector<K, V, KR> = Arc<dyn Fn(&K, &V) -> KR + Send + Sync>;
/// Names the topic a record goes to.
pub(crate) type TopicExtractor<K, V> = Arc<dyn Fn(&Record<K, V>) -> String + Send + Sync>;
/// Takes a record's event time from its key, value and log timestamp (`None`: it has none).
pub(crate) type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> Option<i64> + Send + Sync>;
/// Chooses a record's partition among a topic's (`None`: by the hash of its key).
pub(crate) type StreamPartitioner<K, V> = Arc<dyn Fn(&K, &V, i32) -> Option<i32> + Send + Sync>;

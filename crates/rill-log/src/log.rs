//! The entry point a backend provides.

use crate::{
    Admin, Consumer, ConsumerConfig, Producer, ProducerConfig, RebalanceListener, Result,
    TransactionalProducer,
};

/// A log backend: the factory for its clients. The streams runtime and the services hold an
/// `Arc<dyn Log>` and never name a backend.
pub trait Log: Send + Sync {
    /// Topic administration.
    fn admin(&self) -> &dyn Admin;

    /// A non-transactional producer.
    fn producer(&self, config: &ProducerConfig) -> Result<Box<dyn Producer>>;

    /// A transactional producer with this transactional id; creating it fences any earlier
    /// producer with the same id. Fails with
    /// [`LogError::TransactionsUnsupported`](crate::LogError::TransactionsUnsupported) where the
    /// cluster has no transactions.
    fn transactional_producer(
        &self,
        config: &ProducerConfig,
        transactional_id: &str,
    ) -> Result<Box<dyn TransactionalProducer>>;

    /// A consumer; `listener` hears about rebalances of its group.
    fn consumer(
        &self,
        config: &ConsumerConfig,
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<Box<dyn Consumer>>;
}

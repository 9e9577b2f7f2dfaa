//! Waiting GETs: any number per order, woken when the view stores a new version of it, and
//! removed when they stop waiting (answered, timed out or disconnected).
//!
//! A waiter first registers (taking a [`WaitGuard`]), then arms a notification, then reads the
//! view; only then does it sleep. A change stored after the read notifies the armed waiter, and
//! one stored before it is seen by the read, so no change is missed. The map holds an entry
//! only while some GET waits on that order: the listener called for every stored order costs
//! one map lookup.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The waiting GETs of every order.
#[derive(Default)]
pub struct Waiters {
    orders: Mutex<HashMap<String, Slot>>,
}

struct Slot {
    notify: Arc<Notify>,
    count: usize,
}

impl Waiters {
    /// No waiters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a waiter on `order_id`; it stays registered until the guard is dropped.
    pub fn register(self: &Arc<Self>, order_id: &str) -> WaitGuard {
        let mut orders = self.orders.lock();
        let slot = orders.entry(order_id.to_string()).or_insert_with(|| Slot {
            notify: Arc::new(Notify::new()),
            count: 0,
        });
        slot.count += 1;
        WaitGuard {
            waiters: self.clone(),
            order_id: order_id.to_string(),
            notify: slot.notify.clone(),
        }
    }

    /// Wakes every waiter of `order_id` (called after the view stored a new version).
    pub fn changed(&self, order_id: &str) {
        if let Some(slot) = self.orders.lock().get(order_id) {
            slot.notify.notify_waiters();
        }
    }

    /// Orders with at least one waiter.
    pub fn waited_orders(&self) -> usize {
        self.orders.lock().len()
    }

    /// Waiters across all orders.
    pub fn waiting(&self) -> usize {
        self.orders.lock().values().map(|slot| slot.count).sum()
    }
}

/// One registered waiter; dropping it unregisters (and frees the order's entry when it was the
/// last).
pub struct WaitGuard {
    waiters: Arc<Waiters>,
    order_id: String,
    notify: Arc<Notify>,
}

impl WaitGuard {
    /// The notifier to arm before reading the view: `notify().notified()`, enabled.
    pub fn notify(&self) -> &Notify {
        &self.notify
    }
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        let mut orders = self.waiters.orders.lock();
        if let Some(slot) = orders.get_mut(&self.order_id) {
            slot.count -= 1;
            if slot.count == 0 {
                orders.remove(&self.order_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_guard_removes_the_entry() {
        let waiters = Arc::new(Waiters::new());
        let a = waiters.register("o1");
        let b = waiters.register("o1");
        assert_eq!((waiters.waited_orders(), waiters.waiting()), (1, 2));
        drop(a);
        assert_eq!((waiters.waited_orders(), waiters.waiting()), (1, 1));
        drop(b);
        assert_eq!((waiters.waited_orders(), waiters.waiting()), (0, 0));
    }

    #[tokio::test]
    async fn every_armed_waiter_is_woken() {
        let waiters = Arc::new(Waiters::new());
        let (a, b) = (waiters.register("o1"), waiters.register("o1"));
        let (mut fa, mut fb) = (
            Box::pin(a.notify().notified()),
            Box::pin(b.notify().notified()),
        );
        fa.as_mut().enable();
        fb.as_mut().enable();
        waiters.changed("o1");
        tokio::time::timeout(std::time::Duration::from_secs(1), async {
            fa.await;
            fb.await;
        })
        .await
        .expect("both woken");
    }
}

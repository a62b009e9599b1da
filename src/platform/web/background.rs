use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Work that continues after the response, such as sending an email the
/// request queued. On Vercel it runs through the runtime's `waitUntil`, which
/// keeps the instance alive until it finishes; elsewhere on the Tokio runtime.
/// The handler finds it in the request's extensions.
#[derive(Clone)]
pub struct Background(Arc<dyn Fn(Task) + Send + Sync>);

impl Background {
    pub fn new(spawn: impl Fn(Task) + Send + Sync + 'static) -> Self {
        Self(Arc::new(spawn))
    }

    /// Plain `tokio::spawn`.
    pub fn tokio() -> Self {
        Self::new(|task| {
            tokio::spawn(task);
        })
    }

    /// The request's background runner, or `tokio::spawn` when the caller set
    /// none.
    pub fn of<B>(request: &http::Request<B>) -> Self {
        request
            .extensions()
            .get::<Self>()
            .cloned()
            .unwrap_or_else(Self::tokio)
    }

    /// Runs `task` after the response; its result, if any, is dropped (tasks
    /// record their own outcome).
    pub fn spawn<T>(&self, task: impl Future<Output = T> + Send + 'static) {
        (self.0)(Box::pin(async move {
            task.await;
        }));
    }
}

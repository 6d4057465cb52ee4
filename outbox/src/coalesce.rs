//! [`Coalescer`]: the lane workers' reads and cursor moves, made several at a
//! time. Each request waits in a queue; one task takes everything queued,
//! runs it as one statement and hands each worker its own answer.
//!
//! Lanes under a steady trickle read on a shared grid (see `lane.rs`), so
//! their reads — and, a broker round trip later, their cursor moves — queue up
//! together: eight lanes cost about one read and one cursor write per tick
//! instead of eight each.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt as _;
use tokio::sync::{mpsc, oneshot};

type Job<Q, A> = (Q, oneshot::Sender<A>);

/// Sends requests of type `Q` to a task that answers them in groups with `A`s.
pub(crate) struct Coalescer<Q, A> {
    requests: mpsc::UnboundedSender<Job<Q, A>>,
}

impl<Q: Send + 'static, A: Send + 'static> Coalescer<Q, A> {
    /// Spawns the task. `run` answers up to `max` requests at once, one answer
    /// per request in order (a request left without an answer is answered
    /// `None`, as is every request of a run that panicked). After the first request of a group the task waits `gather`
    /// for more (zero: it only lets the tasks that are ready run first). The
    /// task ends when the coalescer is dropped.
    pub(crate) fn spawn<F, Fut>(max: usize, gather: std::time::Duration, mut run: F) -> Self
    where
        F: FnMut(Vec<Q>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<A>> + Send,
    {
        let (requests, mut queue) = mpsc::unbounded_channel::<Job<Q, A>>();
        let max = max.max(1);
        tokio::spawn(async move {
            let mut jobs = Vec::with_capacity(max);
            while queue.recv_many(&mut jobs, max).await > 0 {
                // Workers due at the same moment are still on their way: let
                // them queue before the statement goes out.
                if gather.is_zero() {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(gather).await;
                }
                while jobs.len() < max
                    && let Ok(job) = queue.try_recv()
                {
                    jobs.push(job);
                }
                let (asks, replies): (Vec<Q>, Vec<oneshot::Sender<A>>) = jobs.drain(..).unzip();
                // A panic in one run answers that group with `None` and
                // leaves the task serving the next.
                let answers = match AssertUnwindSafe(run(asks)).catch_unwind().await {
                    Ok(answers) => answers,
                    Err(_) => {
                        tracing::error!("outbox statement task panicked; its requests get no answer");
                        Vec::new()
                    }
                };
                for (reply, answer) in replies.into_iter().zip(answers) {
                    // The worker may have stopped waiting; its answer is moot.
                    let _ = reply.send(answer);
                }
            }
        });
        Coalescer { requests }
    }

    /// Queues `ask` now and returns its [`Answer`]: requests are answered in
    /// the order they were submitted, whether or not anyone waits.
    pub(crate) fn submit(&self, ask: Q) -> Answer<A> {
        let (reply, answer) = oneshot::channel();
        // If the task is gone the reply sender is dropped with the job, and
        // the answer resolves to `None`.
        let _ = self.requests.send((ask, reply));
        Answer(answer)
    }

    /// Queues `ask` and waits for its answer (`None` if the task is gone or
    /// gave no answer).
    pub(crate) async fn call(&self, ask: Q) -> Option<A> {
        self.submit(ask).await
    }
}

/// The answer to a submitted request: `None` if the task is gone or gave no
/// answer. Waiting for it can be abandoned and resumed (it is `Unpin`).
pub(crate) struct Answer<A>(oneshot::Receiver<A>);

impl<A> Future for Answer<A> {
    type Output = Option<A>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<A>> {
        Pin::new(&mut self.0).poll(cx).map(Result::ok)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[tokio::test]
    async fn requests_queued_together_are_answered_by_one_run() {
        let runs: Arc<Mutex<Vec<Vec<u32>>>> = Arc::default();
        let seen = runs.clone();
        let c = Arc::new(Coalescer::spawn(16, std::time::Duration::ZERO, move |asks: Vec<u32>| {
            seen.lock().expect("lock").push(asks.clone());
            async move { asks.into_iter().map(|a| a * 10).collect::<Vec<_>>() }
        }));
        let calls: Vec<_> = (1..=5)
            .map(|i| {
                tokio::spawn({
                    let c = c.clone();
                    async move { c.call(i).await }
                })
            })
            .collect();
        let mut answers = Vec::new();
        for call in calls {
            answers.push(call.await.expect("join"));
        }
        assert_eq!(answers, (1..=5).map(|i| Some(i * 10)).collect::<Vec<_>>());
        let runs = runs.lock().expect("lock").clone();
        assert_eq!(runs.iter().map(Vec::len).sum::<usize>(), 5);
        assert!(runs.len() < 5, "five requests made together went out one by one: {runs:?}");
    }

    #[tokio::test]
    async fn a_gather_window_collects_requests_that_arrive_a_little_later() {
        let runs: Arc<Mutex<Vec<usize>>> = Arc::default();
        let seen = runs.clone();
        let c =
            Arc::new(Coalescer::spawn(16, std::time::Duration::from_millis(200), move |asks: Vec<u32>| {
                seen.lock().expect("lock").push(asks.len());
                async move { asks }
            }));
        let first = tokio::spawn({
            let c = c.clone();
            async move { c.call(1).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(c.call(2).await, Some(2));
        assert_eq!(first.await.expect("join"), Some(1));
        assert_eq!(*runs.lock().expect("lock"), vec![2], "both requests went out in one run");
    }

    #[tokio::test]
    async fn a_run_that_panics_answers_none_and_the_task_keeps_serving() {
        let c = Coalescer::spawn(16, std::time::Duration::ZERO, |asks: Vec<u32>| async move {
            assert!(!asks.contains(&13), "unlucky");
            asks
        });
        assert_eq!(c.call(13).await, None);
        assert_eq!(c.call(7).await, Some(7));
    }

    #[tokio::test]
    async fn at_most_max_requests_per_run_and_missing_answers_are_none() {
        let runs: Arc<Mutex<Vec<usize>>> = Arc::default();
        let seen = runs.clone();
        let c = Arc::new(Coalescer::spawn(2, std::time::Duration::ZERO, move |asks: Vec<u32>| {
            seen.lock().expect("lock").push(asks.len());
            // Answers only the first request of each run.
            async move { asks.into_iter().take(1).collect::<Vec<_>>() }
        }));
        let calls: Vec<_> = (0..4)
            .map(|i| {
                tokio::spawn({
                    let c = c.clone();
                    async move { c.call(i).await }
                })
            })
            .collect();
        let mut answered = 0;
        for call in calls {
            answered += usize::from(call.await.expect("join").is_some());
        }
        let runs = runs.lock().expect("lock").clone();
        assert!(runs.iter().all(|n| *n <= 2), "{runs:?}");
        assert_eq!(answered, runs.len(), "one answer per run");
    }

    #[tokio::test]
    async fn submitted_requests_keep_their_order_without_anyone_waiting() {
        let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
        let log = seen.clone();
        let c = Coalescer::spawn(2, std::time::Duration::ZERO, move |asks: Vec<u32>| {
            log.lock().expect("lock").extend(asks.iter().copied());
            async move { asks }
        });
        let answers: Vec<Answer<u32>> = (1..=5).map(|i| c.submit(i)).collect();
        // Waited for last to first: each still gets its own answer, and the
        // task ran them in the order they were submitted.
        for (i, answer) in answers.into_iter().enumerate().rev() {
            assert_eq!(answer.await, Some(i as u32 + 1));
        }
        assert_eq!(*seen.lock().expect("lock"), vec![1, 2, 3, 4, 5]);
        drop(c);
    }
}

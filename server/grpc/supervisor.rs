//! The `Supervisor` control service: each RPC turns its request into an engine
//! call and the answer into a reply. Nothing here knows about processes.

use std::pin::Pin;
use std::sync::Arc;

use std::future::Future;
use std::task::{Context, Poll};

use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert;
use super::stats::{RpcStats, WatcherGuard};
use crate::daemon::engine::events::{Delivery, Subscription};
use crate::daemon::engine::EngineHandle;
use crate::daemon::error::Error;
use crate::daemon::process::signal::parse_signal;
use crate::daemon::reload::ReloadHandle;
use crate::proto::{self, supervisor_server::Supervisor};

/// The control service, a thin facade on the engine.
pub struct SupervisorService {
    engine: EngineHandle,
    stats: Arc<RpcStats>,
    reload: Option<ReloadHandle>,
}

impl SupervisorService {
    /// Serves `engine`, counting `Events` watchers and their drops in `stats`.
    pub fn new(engine: EngineHandle, stats: Arc<RpcStats>) -> Self {
        SupervisorService {
            engine,
            stats,
            reload: None,
        }
    }

    /// Serves `Reload` through `reload`; without it `Reload` is refused.
    pub fn reload(mut self, reload: Option<ReloadHandle>) -> Self {
        self.reload = reload;
        self
    }
}

type ReplyStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// An empty name means "every program" where a request allows it.
fn optional_name(name: String) -> Option<String> {
    (!name.is_empty()).then_some(name)
}

#[tonic::async_trait]
impl Supervisor for SupervisorService {
    async fn start(
        &self,
        request: Request<proto::StartRequest>,
    ) -> Result<Response<proto::ProgramInfo>, Status> {
        let request = request.into_inner();
        let def = request
            .spec
            .map(|spec| convert::program_def(&request.name, spec))
            .transpose()?;
        let info = self.engine.start(request.name, def, request.wait).await?;
        Ok(Response::new(convert::program_info(info)))
    }

    async fn stop(
        &self,
        request: Request<proto::StopRequest>,
    ) -> Result<Response<proto::ProgramInfo>, Status> {
        let request = request.into_inner();
        let timeout = convert::timeout("timeout_ms", request.timeout_ms)?;
        let info = self.engine.stop(request.name, timeout).await?;
        Ok(Response::new(convert::program_info(info)))
    }

    async fn restart(
        &self,
        request: Request<proto::RestartRequest>,
    ) -> Result<Response<proto::ProgramInfo>, Status> {
        let request = request.into_inner();
        let info = self.engine.restart(request.name, request.full).await?;
        Ok(Response::new(convert::program_info(info)))
    }

    async fn send(
        &self,
        request: Request<proto::SendRequest>,
    ) -> Result<Response<proto::SendReply>, Status> {
        let request = request.into_inner();
        let delivered = self
            .engine
            .send(request.name, request.worker, request.payload)
            .await?;
        Ok(Response::new(proto::SendReply { delivered }))
    }

    async fn kill(
        &self,
        request: Request<proto::KillRequest>,
    ) -> Result<Response<proto::KillReply>, Status> {
        let request = request.into_inner();
        let signal = parse_signal(&request.signal).map_err(|reason| Error::InvalidArgument {
            field: "signal",
            reason,
        })?;
        let signalled = self
            .engine
            .kill(request.name, request.worker, signal)
            .await?;
        Ok(Response::new(proto::KillReply { signalled }))
    }

    async fn scale(
        &self,
        request: Request<proto::ScaleRequest>,
    ) -> Result<Response<proto::ProgramInfo>, Status> {
        let request = request.into_inner();
        let info = self.engine.scale(request.name, request.count).await?;
        Ok(Response::new(convert::program_info(info)))
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListReply>, Status> {
        let name = optional_name(request.into_inner().name);
        let programs = self.engine.list(name).await?;
        Ok(Response::new(proto::ListReply {
            programs: programs.into_iter().map(convert::program_info).collect(),
        }))
    }

    async fn reload(
        &self,
        request: Request<proto::ReloadRequest>,
    ) -> Result<Response<proto::ReloadReply>, Status> {
        let dry_run = request.into_inner().dry_run;
        let Some(reload) = &self.reload else {
            return Err(Status::failed_precondition(
                "infantd runs without a config file (--config FILE): there is nothing to reload",
            ));
        };
        let plan = reload.reload(dry_run).await?;
        Ok(Response::new(proto::ReloadReply {
            plan: plan.entries.iter().map(convert::plan_entry).collect(),
            applied: !dry_run,
        }))
    }

    async fn remove(
        &self,
        request: Request<proto::RemoveRequest>,
    ) -> Result<Response<proto::ProgramInfo>, Status> {
        let request = request.into_inner();
        let timeout = convert::timeout("timeout_ms", request.timeout_ms)?;
        let info = self.engine.remove(request.name, timeout).await?;
        Ok(Response::new(convert::program_info(info)))
    }

    type EachWorkerStream = ReplyStream<proto::WorkerInfo>;

    async fn each_worker(
        &self,
        request: Request<proto::EachWorkerRequest>,
    ) -> Result<Response<Self::EachWorkerStream>, Status> {
        let name = optional_name(request.into_inner().name);
        let workers = self.engine.workers(name).await?;
        let stream = tokio_stream::iter(workers.into_iter().map(|w| Ok(convert::worker_info(w))));
        Ok(Response::new(Box::pin(stream)))
    }

    type EventsStream = ReplyStream<proto::Event>;

    type LogsStream = ReplyStream<proto::LogLine>;

    async fn logs(
        &self,
        request: Request<proto::LogsRequest>,
    ) -> Result<Response<Self::LogsStream>, Status> {
        use crate::daemon::logs::{Filter, Stream};
        let request = request.into_inner();
        if request.name.is_empty() {
            return Err(Error::InvalidArgument {
                field: "name",
                reason: "must name a program".into(),
            }
            .into());
        }
        // Unknown programs are an error, as everywhere else.
        self.engine.list(Some(request.name.clone())).await?;
        let stream = match proto::LogStream::try_from(request.stream) {
            Ok(proto::LogStream::Unspecified) => None,
            Ok(proto::LogStream::Out) => Some(Stream::Out),
            Ok(proto::LogStream::Err) => Some(Stream::Err),
            Err(_) => {
                return Err(Error::InvalidArgument {
                    field: "stream",
                    reason: format!("{} is not a log stream", request.stream),
                }
                .into())
            }
        };
        let filter = Filter {
            worker: request.worker,
            stream,
        };
        let last = usize::try_from(request.last.unwrap_or(10)).unwrap_or(usize::MAX);
        let reader = self
            .engine
            .logs()
            .read(&request.name, filter, last, request.follow);
        let name = request.name;
        let stream = futures_util::stream::unfold(reader, move |mut reader| {
            let name = name.clone();
            async move {
                let line = reader.next().await?;
                Some((Ok(convert::log_line(&name, line)), reader))
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn events(
        &self,
        request: Request<proto::EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let request = request.into_inner();
        let name = optional_name(request.name);
        if let Some(name) = &name {
            // Watching a program that does not exist yet is allowed (it may be
            // started later), but the name must be one that could exist.
            crate::daemon::spec::validate_name(name)?;
        }
        let mut subscription = self.engine.subscribe().await?;
        if !request.replay {
            subscription.skip_history();
        } else if let Some(last) = request.last.filter(|&n| n > 0) {
            let keep = usize::try_from(last).unwrap_or(usize::MAX);
            subscription.replay_last(keep, |e| name.as_deref().is_none_or(|n| n == e.program));
        }
        // Unset means follow: an empty request, what a generated client sends
        // first, must not come back empty and closed.
        if !request.follow.unwrap_or(true) {
            subscription.stop_at_now();
        }
        Ok(Response::new(Box::pin(WatchStream::new(
            subscription,
            name,
            &self.stats,
        ))))
    }
}

/// A watcher's `Events` stream: the next event is taken from the bus only when
/// the transport asks for one, so a watcher that does not read holds nothing
/// (it falls behind in the bus's ring and is told what it missed).
struct WatchStream {
    next: Pin<Box<dyn Future<Output = (Option<Delivery>, Subscription)> + Send>>,
    /// Only this program's events, if set.
    name: Option<String>,
    /// Events missed since the last one delivered.
    missed: u64,
    /// Counts this watcher and what it misses, for the metrics.
    stats: Arc<RpcStats>,
    _watching: WatcherGuard,
}

impl WatchStream {
    fn new(subscription: Subscription, name: Option<String>, stats: &Arc<RpcStats>) -> Self {
        WatchStream {
            next: Self::read(subscription),
            name,
            missed: 0,
            stats: Arc::clone(stats),
            _watching: stats.watching(),
        }
    }

    fn read(
        mut subscription: Subscription,
    ) -> Pin<Box<dyn Future<Output = (Option<Delivery>, Subscription)> + Send>> {
        Box::pin(async move { (subscription.next().await, subscription) })
    }
}

impl Stream for WatchStream {
    type Item = Result<proto::Event, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let (delivery, subscription) = match self.next.as_mut().poll(cx) {
                Poll::Ready(read) => read,
                Poll::Pending => return Poll::Pending,
            };
            self.next = Self::read(subscription);
            let Some(delivery) = delivery else {
                return Poll::Ready(None);
            };
            if delivery.missed > 0 {
                self.stats.dropped(delivery.missed);
            }
            self.missed += delivery.missed;
            if self
                .name
                .as_deref()
                .is_some_and(|n| n != delivery.event.program)
            {
                continue;
            }
            let missed = std::mem::take(&mut self.missed);
            return Poll::Ready(Some(Ok(convert::event(&delivery.event, missed))));
        }
    }
}

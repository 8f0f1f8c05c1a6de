//! Bulk replay: a paced run over every replayable entry a filter covers, with progress and
//! cancel, locked across replicas (one at a time), its state in KV so any replica can report
//! or cancel it.

use crate::actions::{ActionError, Actions};
use crate::auth::Caller;
use crate::entry::now;
use crate::filter::Filter;
use async_nats::jetstream::kv::{self, Operation};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// The lock's key; its value is the running job's id.
const LOCK: &str = "lock.bulk-replay";
/// A running job's heartbeat older than this means its replica died: the lock may be taken.
const STALE: Duration = Duration::from_secs(30);

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Replaying.
    Running,
    /// Asked to stop; stops before its next entry.
    Cancelling,
    /// Stopped on request.
    Cancelled,
    /// Went through every entry.
    Finished,
}

/// A bulk replay and what it did so far.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// `job-<uuid>`.
    pub id: String,
    /// What it covers.
    pub filter: Filter,
    /// Who started it.
    pub by: String,
    /// Where it stands.
    pub state: JobState,
    /// Entries it covers.
    pub total: usize,
    /// Entries handled so far.
    pub done: usize,
    /// Sent again.
    pub replayed: usize,
    /// Failed again at once, or could not be sent.
    pub failed: usize,
    /// Closed meanwhile (resolved by a fact, discarded): left alone.
    pub skipped: usize,
    /// Entries per second.
    pub rate: u32,
    /// RFC 3339.
    pub started_at: String,
    /// RFC 3339, once it stopped.
    pub finished_at: Option<String>,
    /// RFC 3339 of its last progress.
    pub heartbeat: String,
    /// The last failure, in words.
    pub last_error: Option<String>,
    /// Ids still to do (kept so a report can say what was left).
    #[serde(default)]
    pub remaining: Vec<String>,
}

/// Starts, reports and cancels bulk replays.
#[derive(Debug, Clone)]
pub struct Jobs {
    actions: Actions,
    rate: u32,
}

impl Jobs {
    /// Jobs replaying through `actions` at `rate` entries per second.
    pub fn new(actions: Actions, rate: u32) -> Self {
        Self { actions, rate }
    }

    fn kv(&self) -> &kv::Store {
        self.actions.store().kv()
    }

    /// The replayable entries `filter` covers for `caller`.
    pub fn covered(&self, filter: &Filter, caller: &Caller) -> Vec<String> {
        let mut ids: Vec<(String, String)> = self.actions.store().scan(|it| {
            it.filter(|v| v.entry.status.replayable() && filter.matches(&v.entry, caller))
                .map(|v| (v.entry.first_seen.clone(), v.entry.id.clone()))
                .collect()
        });
        ids.sort();
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Starts a job over what `filter` covers; refused while another runs.
    pub async fn start(&self, filter: Filter, caller: &Caller) -> Result<Job, ActionError> {
        let ids = self.covered(&filter, caller);
        let id = format!("job-{}", uuid::Uuid::new_v4().simple());
        self.lock(&id).await?;
        let at = now();
        let job = Job {
            id: id.clone(),
            filter,
            by: caller.name.clone(),
            state: JobState::Running,
            total: ids.len(),
            done: 0,
            replayed: 0,
            failed: 0,
            skipped: 0,
            rate: self.rate,
            started_at: at.clone(),
            finished_at: None,
            heartbeat: at,
            last_error: None,
            remaining: ids,
        };
        self.kv()
            .put(job_key(&id), encode(&job))
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let me = self.clone();
        let who = caller.name.clone();
        tokio::spawn(async move { me.run(id, who).await });
        Ok(job)
    }

    async fn lock(&self, id: &str) -> Result<(), ActionError> {
        match self.kv().create(LOCK, Bytes::from(id.to_owned())).await {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(ActionError::Unavailable(e.to_string())),
        }
        let held = self
            .kv()
            .entry(LOCK)
            .await
            .map_err(|e| ActionError::Unavailable(e.to_string()))?;
        let Some(held) = held.filter(|e| e.operation == Operation::Put) else {
            // Released meanwhile: try once more.
            return self
                .kv()
                .create(LOCK, Bytes::from(id.to_owned()))
                .await
                .map(|_| ())
                .map_err(|_| ActionError::Invalid("another bulk replay just started".into()));
        };
        let holder = String::from_utf8_lossy(&held.value).to_string();
        if let Some(job) = self.get(&holder).await
            && matches!(job.state, JobState::Running | JobState::Cancelling)
            && !stale(&job.heartbeat)
        {
            return Err(ActionError::Invalid(format!(
                "bulk replay {holder} is running ({} of {} done); cancel it or wait",
                job.done, job.total
            )));
        }
        self.kv()
            .update(LOCK, Bytes::from(id.to_owned()), held.revision)
            .await
            .map(|_| ())
            .map_err(|_| ActionError::Invalid("another bulk replay just started".into()))
    }

    /// A job's state.
    pub async fn get(&self, id: &str) -> Option<Job> {
        let v = self.kv().get(job_key(id)).await.ok()??;
        serde_json::from_slice(&v).ok()
    }

    /// Asks a running job to stop.
    pub async fn cancel(&self, id: &str) -> Result<Job, ActionError> {
        for _ in 0..8 {
            let e = self
                .kv()
                .entry(job_key(id))
                .await
                .map_err(|e| ActionError::Unavailable(e.to_string()))?
                .filter(|e| e.operation == Operation::Put)
                .ok_or_else(|| ActionError::Store(crate::store::StoreError::NotFound(id.into())))?;
            let mut job: Job = serde_json::from_slice(&e.value)
                .map_err(|e| ActionError::Unavailable(e.to_string()))?;
            if job.state != JobState::Running {
                return Ok(job);
            }
            job.state = JobState::Cancelling;
            if self
                .kv()
                .update(job_key(id), encode(&job), e.revision)
                .await
                .is_ok()
            {
                return Ok(job);
            }
        }
        Err(ActionError::Unavailable("the job kept changing".into()))
    }

    async fn run(&self, id: String, who: String) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(self.rate)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Ok(Some(e)) = self.kv().entry(job_key(&id)).await else {
                break;
            };
            let Ok(mut job) = serde_json::from_slice::<Job>(&e.value) else {
                break;
            };
            let finished = match job.state {
                JobState::Cancelling => {
                    job.state = JobState::Cancelled;
                    true
                }
                JobState::Running if job.remaining.is_empty() => {
                    job.state = JobState::Finished;
                    true
                }
                JobState::Running => {
                    let next = job.remaining.remove(0);
                    match self.actions.replay(&next, &who, None, 0).await {
                        Ok(r) if r.outcome == "failed_again" => job.failed += 1,
                        Ok(_) => job.replayed += 1,
                        Err(ActionError::Store(crate::store::StoreError::Refused(_)))
                        | Err(ActionError::Store(crate::store::StoreError::NotFound(_))) => {
                            job.skipped += 1
                        }
                        Err(err) => {
                            job.failed += 1;
                            job.last_error = Some(format!("{next}: {err}"));
                        }
                    }
                    job.done += 1;
                    false
                }
                _ => break,
            };
            job.heartbeat = now();
            if finished {
                job.finished_at = Some(now());
            }
            self.save_progress(&id, &job, e.revision).await;
            if finished {
                tracing::info!(job = %id, state = ?job.state, replayed = job.replayed, failed = job.failed, skipped = job.skipped, "Bulk replay stopped.");
                let _ = self.kv().delete(LOCK).await;
                break;
            }
        }
    }
}

impl Jobs {
    /// Writes the runner's progress; a cancel written meanwhile keeps its state, and the
    /// progress goes in beside it (so the report counts every replay sent).
    async fn save_progress(&self, id: &str, job: &Job, mut revision: u64) {
        let mut job = job.clone();
        for _ in 0..8 {
            match self.kv().update(job_key(id), encode(&job), revision).await {
                Ok(_) => return,
                Err(_) => {
                    let Ok(Some(e)) = self.kv().entry(job_key(id)).await else {
                        return;
                    };
                    if let Ok(fresh) = serde_json::from_slice::<Job>(&e.value)
                        && fresh.state == JobState::Cancelling
                        && job.state == JobState::Running
                    {
                        job.state = JobState::Cancelling;
                    }
                    revision = e.revision;
                }
            }
        }
    }
}

fn job_key(id: &str) -> String {
    format!("job.{id}")
}

fn encode(job: &Job) -> Bytes {
    Bytes::from(serde_json::to_vec(job).expect("jobs serialize"))
}

fn stale(heartbeat: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(heartbeat)
        .map(|t| {
            chrono::Utc::now().signed_duration_since(t)
                > chrono::Duration::from_std(STALE).expect("fits")
        })
        .unwrap_or(true)
}

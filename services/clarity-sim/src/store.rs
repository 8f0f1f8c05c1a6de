//! The store's current state, built by applying events: what the REST API serves and what the
//! ground truth reports. A snapshot replaces the held one only when its `Version` is higher, the
//! same rule a consumer follows, so applying events in any order converges.

use crate::event::Event;
use crate::model::*;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// Entities by id.
#[derive(Debug, Clone, Default)]
pub struct StoreState {
    /// Orders by `ID` (latest version, without `PreviousStatusKey`).
    pub orders: BTreeMap<i64, SalesOrder>,
    /// Returns by `ID`.
    pub returns: BTreeMap<i64, SalesReturn>,
    /// Accounts by `ID`.
    pub accounts: BTreeMap<i64, Account>,
    /// The store as named in the bodies, once one was applied.
    pub store: Option<StoreRef>,
}

/// Why an event could not be applied.
#[derive(Debug, thiserror::Error)]
#[error("event {id} does not parse as {ty}: {source}")]
pub struct ApplyError {
    id: String,
    ty: EventType,
    #[source]
    source: serde_json::Error,
}

impl StoreState {
    /// Applies one event's body (parsed from its bytes, so the bytes are what is checked).
    pub fn apply(&mut self, event: &Event) -> Result<(), ApplyError> {
        let err = |source| ApplyError {
            id: event.id.clone(),
            ty: event.event_type,
            source,
        };
        match event.event_type {
            EventType::SalesReturnCompleted => {
                let env: Envelope<SalesReturn> =
                    serde_json::from_slice(&event.body).map_err(err)?;
                self.store.get_or_insert(env.store);
                upsert(&mut self.returns, env.data.id, env.data, |r| r.version);
            }
            EventType::AccountCreated | EventType::AccountUpdated => {
                let env: Envelope<Account> = serde_json::from_slice(&event.body).map_err(err)?;
                self.store.get_or_insert(env.store);
                upsert(&mut self.accounts, env.data.id, env.data, |a| a.version);
            }
            _ => {
                let env: Envelope<SalesOrder> = serde_json::from_slice(&event.body).map_err(err)?;
                self.store.get_or_insert(env.store);
                let mut order = env.data;
                order.previous_status_key = None;
                upsert(&mut self.orders, order.id, order, |o| o.version);
            }
        }
        Ok(())
    }

    /// A state holding every event applied.
    pub fn from_events(events: &[Event]) -> Result<Self, ApplyError> {
        let mut s = Self::default();
        for e in events {
            s.apply(e)?;
        }
        Ok(s)
    }
}

fn upsert<T>(map: &mut BTreeMap<i64, T>, id: i64, new: T, version: impl Fn(&T) -> u32) {
    match map.get(&id) {
        Some(old) if version(old) >= version(&new) => {}
        _ => {
            map.insert(id, new);
        }
    }
}

/// A [`StoreState`] shared between a sender (which applies each event as it is first sent) and
/// the REST server, so the API and the webhooks agree.
#[derive(Debug, Default)]
pub struct Store {
    state: RwLock<StoreState>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding every event.
    pub fn from_events(events: &[Event]) -> Result<Self, ApplyError> {
        Ok(Self {
            state: RwLock::new(StoreState::from_events(events)?),
        })
    }

    /// Applies one event.
    pub fn apply(&self, event: &Event) -> Result<(), ApplyError> {
        self.state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(event)
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> StoreState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the current state without copying it.
    pub fn with<R>(&self, f: impl FnOnce(&StoreState) -> R) -> R {
        f(&self.state.read().unwrap_or_else(|p| p.into_inner()))
    }
}

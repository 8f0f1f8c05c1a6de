//! Xero's rate limits: per tenant 5 in flight, 60 a minute, 5,000 a day; per app 10,000 a minute.
//! Windows are fixed, start at the first call, and shrink with the time scale.

use crate::state::Settings;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            count: 0,
        }
    }

    fn roll(&mut self, len: Duration, now: Instant) {
        if now.duration_since(self.start) >= len {
            self.start = now;
            self.count = 0;
        }
    }

    fn retry_after(&self, len: Duration, now: Instant) -> u64 {
        let left = len.saturating_sub(now.duration_since(self.start));
        left.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[derive(Debug)]
struct TenantWindows {
    minute: Window,
    day: Window,
    in_flight: u32,
}

/// Which limit refused a call; the value of `X-Rate-Limit-Problem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    Minute,
    Day,
    Concurrent,
    AppMinute,
}

impl Problem {
    /// Header token (minute and day are observed on Xero; the other two are guesses).
    pub fn token(self) -> &'static str {
        match self {
            Problem::Minute => "minute",
            Problem::Day => "day",
            Problem::Concurrent => "concurrent",
            Problem::AppMinute => "appminute",
        }
    }

    /// Parses a token set through /admin.
    pub fn parse(s: &str) -> Self {
        match s {
            "day" => Problem::Day,
            "concurrent" => Problem::Concurrent,
            "appminute" => Problem::AppMinute,
            _ => Problem::Minute,
        }
    }
}

/// The three remaining-call counts sent on every response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Remaining {
    pub day: u32,
    pub minute: u32,
    pub app_minute: u32,
}

impl Remaining {
    /// As response headers.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("x-daylimit-remaining", self.day.to_string()),
            ("x-minlimit-remaining", self.minute.to_string()),
            ("x-appminlimit-remaining", self.app_minute.to_string()),
        ]
    }
}

/// A refused call.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub problem: Problem,
    pub retry_after: u64,
    pub remaining: Remaining,
}

/// All rate-limit windows.
#[derive(Debug)]
pub struct Limits {
    tenants: HashMap<Uuid, TenantWindows>,
    app: Window,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            tenants: HashMap::new(),
            app: Window::new(),
        }
    }
}

impl Limits {
    /// Counts a call for `tenant` if every limit allows it (and marks it in flight).
    pub fn acquire(&mut self, tenant: Uuid, s: &Settings) -> Result<Remaining, Refusal> {
        let now = Instant::now();
        let min_len = s.scaled_secs(60);
        let day_len = s.scaled_secs(86_400);
        self.app.roll(min_len, now);
        let t = self.tenants.entry(tenant).or_insert_with(|| TenantWindows {
            minute: Window::new(),
            day: Window::new(),
            in_flight: 0,
        });
        t.minute.roll(min_len, now);
        t.day.roll(day_len, now);
        let remaining = |t: &TenantWindows, app: &Window| Remaining {
            day: s.day_limit.saturating_sub(t.day.count),
            minute: s.minute_limit.saturating_sub(t.minute.count),
            app_minute: s.app_minute_limit.saturating_sub(app.count),
        };
        let refuse = |problem, retry_after, t: &TenantWindows, app: &Window| {
            Err(Refusal {
                problem,
                retry_after,
                remaining: remaining(t, app),
            })
        };
        if t.in_flight >= s.concurrent_limit {
            return refuse(Problem::Concurrent, 1, t, &self.app);
        }
        if t.day.count >= s.day_limit {
            return refuse(Problem::Day, t.day.retry_after(day_len, now), t, &self.app);
        }
        if t.minute.count >= s.minute_limit {
            return refuse(
                Problem::Minute,
                t.minute.retry_after(min_len, now),
                t,
                &self.app,
            );
        }
        if self.app.count >= s.app_minute_limit {
            return refuse(
                Problem::AppMinute,
                self.app.retry_after(min_len, now),
                t,
                &self.app,
            );
        }
        t.day.count += 1;
        t.minute.count += 1;
        t.in_flight += 1;
        self.app.count += 1;
        Ok(remaining(t, &self.app))
    }

    /// Ends an in-flight call.
    pub fn release(&mut self, tenant: Uuid) {
        if let Some(t) = self.tenants.get_mut(&tenant) {
            t.in_flight = t.in_flight.saturating_sub(1);
        }
    }

    /// Current remaining counts without spending a call.
    pub fn peek(&mut self, tenant: Uuid, s: &Settings) -> Remaining {
        let now = Instant::now();
        let min_len = s.scaled_secs(60);
        self.app.roll(min_len, now);
        let (day, minute) = match self.tenants.get_mut(&tenant) {
            Some(t) => {
                t.minute.roll(min_len, now);
                t.day.roll(s.scaled_secs(86_400), now);
                (t.day.count, t.minute.count)
            }
            None => (0, 0),
        };
        Remaining {
            day: s.day_limit.saturating_sub(day),
            minute: s.minute_limit.saturating_sub(minute),
            app_minute: s.app_minute_limit.saturating_sub(self.app.count),
        }
    }

    /// Forgets every window.
    pub fn reset(&mut self) {
        for t in self.tenants.values_mut() {
            t.minute = Window::new();
            t.day = Window::new();
        }
        self.app = Window::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn minute_limit_refuses_the_61st_call_and_rolls_over() {
        let mut s = Settings::from_config(&Config::for_tests());
        s.time_scale = 600.0; // a minute lasts 100 ms
        let mut l = Limits::default();
        let t = Uuid::new_v4();
        for i in 0..60 {
            let r = l.acquire(t, &s).unwrap();
            assert_eq!(r.minute, 59 - i);
            l.release(t);
        }
        let refused = l.acquire(t, &s).unwrap_err();
        assert_eq!(refused.problem, Problem::Minute);
        assert_eq!(refused.retry_after, 1);
        std::thread::sleep(Duration::from_millis(120));
        assert!(l.acquire(t, &s).is_ok());
    }

    #[test]
    fn concurrency_is_counted_until_release() {
        let s = Settings::from_config(&Config::for_tests());
        let mut l = Limits::default();
        let t = Uuid::new_v4();
        for _ in 0..5 {
            l.acquire(t, &s).unwrap();
        }
        assert_eq!(l.acquire(t, &s).unwrap_err().problem, Problem::Concurrent);
        l.release(t);
        assert!(l.acquire(t, &s).is_ok());
    }
}

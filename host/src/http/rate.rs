//! Per-client rate limits by endpoint group (API spec, section 5): GCRA buckets from
//! `governor`, keyed by API key (or by address on open routes), and the `X-RateLimit-*`
//! headers that report them.
//! Owns: [`RateLimits`], [`Group`], [`Client`], [`Verdict`]. Never: queues a request; a
//! request over its limit is refused at once with 429 and `Retry-After`.
//! Limits: at most [`MAX_TRACKED_CLIENTS`] clients per group are tracked; past that, new
//! clients share one bucket, so memory stays bounded however many addresses appear.

use crate::config::RateLimitConfig;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use hyper::header::{HeaderMap, HeaderValue};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Clients tracked per group before new ones share the overflow bucket. About 100 bytes
/// each, so 10 MB per group at most.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Which limit a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `/mcp/execute` and MCP `tools/call`.
    Execute,
    /// `/health`.
    Health,
    /// `/metrics`.
    Metrics,
    /// Everything else.
    Default,
}

impl Group {
    /// The group of a REST route template.
    pub fn of_route(template: &str) -> Group {
        match template {
            "/mcp/execute" => Group::Execute,
            "/health" => Group::Health,
            "/metrics" => Group::Metrics,
            _ => Group::Default,
        }
    }

    /// The group of an MCP method.
    pub fn of_mcp_method(method: &str) -> Group {
        if method == "tools/call" {
            Group::Execute
        } else {
            Group::Default
        }
    }

    fn index(self) -> usize {
        match self {
            Group::Execute => 0,
            Group::Health => 1,
            Group::Metrics => 2,
            Group::Default => 3,
        }
    }
}

/// Whose bucket a request takes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// An API key or a token subject: [`crate::auth::Principal::identity`].
    Principal(String),
    /// A client without a key, by address (IPv6 by its /64, which one host usually holds).
    Addr(IpAddr),
    /// Every address or subject past [`MAX_TRACKED_CLIENTS`].
    Overflow,
}

impl Client {
    /// The client of a request: who it authenticated as, else its address.
    pub fn of(identity: Option<String>, peer: IpAddr) -> Client {
        match (identity, peer) {
            (Some(identity), _) => Client::Principal(identity),
            (None, IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                Client::Addr(IpAddr::V6(segments.into()))
            }
            (None, IpAddr::V6(v6)) => Client::Addr(IpAddr::V4(
                v6.to_ipv4_mapped()
                    .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
            )),
            (None, addr) => Client::Addr(addr),
        }
    }
}

/// The outcome of a check, as the response headers report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may go on.
    pub allowed: bool,
    /// Requests per window (a minute).
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Unix time (seconds) when the bucket is full again.
    pub reset: u64,
    /// Seconds until one more request is allowed, when refused.
    pub retry_after: Option<u64>,
}

impl Verdict {
    /// Adds `X-RateLimit-Limit`, `-Remaining`, `-Reset`, and `Retry-After` when refused.
    pub fn headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset));
        if let Some(seconds) = self.retry_after {
            headers.insert(hyper::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
    }
}

type Limiter =
    RateLimiter<Client, DefaultKeyedStateStore<Client>, DefaultClock, StateInformationMiddleware>;

/// The limiters of every group.
pub struct RateLimits {
    limiters: [Limiter; 4],
    per_minute: [u32; 4],
    clock: DefaultClock,
}

impl RateLimits {
    /// Limiters with `config`'s quotas; `None` when limiting is off.
    pub fn new(config: &RateLimitConfig) -> Option<RateLimits> {
        if !config.enabled {
            return None;
        }
        let per_minute = [
            config.execute,
            config.health,
            config.metrics,
            config.default,
        ];
        let limiter = |n: u32| {
            let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            RateLimiter::dashmap(Quota::per_minute(n))
                .with_middleware::<StateInformationMiddleware>()
        };
        Some(RateLimits {
            limiters: per_minute.map(limiter),
            per_minute,
            clock: DefaultClock::default(),
        })
    }

    /// Takes one request from `client`'s bucket in `group`.
    pub fn check(&self, group: Group, client: Client) -> Verdict {
        let limiter = &self.limiters[group.index()];
        let limit = self.per_minute[group.index()];
        // API keys are few; addresses and token subjects can be many.
        let many = !matches!(&client, Client::Principal(id) if id.starts_with("key:"));
        let client = if many && limiter.len() >= MAX_TRACKED_CLIENTS {
            limiter.retain_recent();
            if limiter.len() >= MAX_TRACKED_CLIENTS {
                Client::Overflow
            } else {
                client
            }
        } else {
            client
        };
        let per_request = Duration::from_secs(60) / limit;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        match limiter.check_key(&client) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let refill = per_request * (limit - remaining.min(limit));
                Verdict {
                    allowed: true,
                    limit,
                    remaining,
                    reset: (now + refill).as_secs_f64().ceil() as u64,
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Verdict {
                    allowed: false,
                    limit,
                    remaining: 0,
                    reset: (now + per_request * limit).as_secs_f64().ceil() as u64,
                    retry_after: Some(wait.as_secs_f64().ceil().max(1.0) as u64),
                }
            }
        }
    }

    /// Forgets clients whose buckets are full again, and gives the memory back.
    pub fn sweep(&self) {
        for limiter in &self.limiters {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(default: u32) -> RateLimits {
        RateLimits::new(&RateLimitConfig {
            default,
            ..RateLimitConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn a_bucket_empties_then_refuses_with_retry_after() {
        let limits = limits(3);
        let client = Client::Principal("key:1".into());
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check(Group::Default, client.clone()))
            .map(|v| {
                assert!(v.allowed);
                assert_eq!(v.limit, 3);
                v.remaining
            })
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limits.check(Group::Default, client);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        let wait = refused.retry_after.unwrap();
        assert!((1..=20).contains(&wait), "one request per 20 s: {wait}");
        assert!(
            limits
                .check(Group::Default, Client::Principal("key:2".into()))
                .allowed,
            "others are not affected"
        );
        assert!(
            limits
                .check(Group::Health, Client::Principal("key:1".into()))
                .allowed,
            "groups are separate"
        );
    }

    #[test]
    fn ipv6_clients_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(Client::of(None, a), Client::of(None, b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            Client::of(None, mapped),
            Client::Addr("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            Client::of(Some("key:7".into()), a),
            Client::Principal("key:7".into())
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses() {
        let limits = limits(1);
        for n in 0..(MAX_TRACKED_CLIENTS as u32 + 1_000) {
            let addr = IpAddr::V4(std::net::Ipv4Addr::from(n));
            limits.check(Group::Default, Client::Addr(addr));
        }
        assert!(limits.limiters[Group::Default.index()].len() <= MAX_TRACKED_CLIENTS + 1);
    }
}

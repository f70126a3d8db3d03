//! What the generated rows look like: the original generator's
//! distributions (content types, lengths, event types, devices, durations,
//! 1,000 users, `raw_payload`), drawn from a seedable RNG.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use uuid::Uuid;

pub const CONTENT_TYPES: [&str; 3] = ["podcast", "newsletter", "video"];
pub const EVENT_TYPES: [&str; 4] = ["play", "pause", "finish", "click"];
pub const DEVICES: [&str; 6] = [
    "ios",
    "android",
    "web-chrome",
    "web-safari",
    "web-firefox",
    "desktop",
];
const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
    "Mozilla/5.0 (Linux; Android 14)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0)",
];
const USERS: usize = 1_000;

/// A `content` row to insert.
#[derive(Debug, Clone)]
pub struct NewContent {
    pub id: Uuid,
    pub slug: String,
    pub title: String,
    pub content_type: &'static str,
    pub length_seconds: Option<i32>,
    /// How long before now it was published, seconds.
    pub published_secs_ago: i64,
}

/// An `engagement_events` row to insert (`id` and `event_ts` come from the
/// database).
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub content_id: Uuid,
    pub user_id: Uuid,
    pub event_type: &'static str,
    pub duration_ms: Option<i32>,
    pub device: &'static str,
    pub raw_payload: String,
}

/// Draws rows. Deterministic for a given seed (apart from what the
/// database assigns: ids and timestamps).
pub struct RowGenerator {
    rng: StdRng,
    users: Vec<Uuid>,
    next_slug: u64,
}

impl RowGenerator {
    pub fn new(seed: Option<u64>) -> Self {
        let mut rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let users = (0..USERS)
            .map(|_| Uuid::from_bytes(rng.random()))
            .map(as_v4)
            .collect();
        let next_slug = rng.random_range(0..1_000_000_000);
        Self {
            rng,
            users,
            next_slug,
        }
    }

    pub fn uuid(&mut self) -> Uuid {
        as_v4(Uuid::from_bytes(self.rng.random()))
    }

    pub fn content(&mut self) -> NewContent {
        let content_type = CONTENT_TYPES[self.rng.random_range(0..CONTENT_TYPES.len())];
        self.next_slug += 1;
        NewContent {
            id: self.uuid(),
            slug: format!("{content_type}-{}", self.next_slug),
            title: format!("{} #{}", title_case(content_type), self.next_slug),
            content_type,
            length_seconds: self.length_seconds(content_type),
            published_secs_ago: self.rng.random_range(0..30 * 86_400),
        }
    }

    /// A new length for an existing content row (an update).
    pub fn length_seconds(&mut self, content_type: &str) -> Option<i32> {
        match content_type {
            "podcast" => Some(self.rng.random_range(1200..=7200)),
            "video" => Some(self.rng.random_range(300..=3600)),
            _ => None,
        }
    }

    pub fn event(&mut self, content_id: Uuid) -> NewEvent {
        let event_type = EVENT_TYPES[self.rng.random_range(0..EVENT_TYPES.len())];
        let device = DEVICES[self.rng.random_range(0..DEVICES.len())];
        let user_id = self.users[self.rng.random_range(0..self.users.len())];
        let duration_ms = self.duration_ms(event_type);
        let mut payload = json!({
            "session_id": self.uuid().to_string(),
            "user_agent": USER_AGENTS[self.rng.random_range(0..USER_AGENTS.len())],
            "timestamp": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
        });
        if event_type == "click" {
            payload["click_position"] = json!({
                "x": self.rng.random_range(0..1920),
                "y": self.rng.random_range(0..1080),
            });
        }
        NewEvent {
            content_id,
            user_id,
            event_type,
            duration_ms,
            device,
            raw_payload: payload.to_string(),
        }
    }

    /// Play and pause carry how long the user listened; finish and click do not.
    pub fn duration_ms(&mut self, event_type: &str) -> Option<i32> {
        matches!(event_type, "play" | "pause").then(|| self.rng.random_range(1000..=300_000))
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.rng.random_range(0..items.len())])
    }

    pub fn index(&mut self, len: usize) -> Option<usize> {
        (len > 0).then(|| self.rng.random_range(0..len))
    }
}

/// Sets the version and variant bits, so random bytes are a valid v4 UUID.
fn as_v4(uuid: Uuid) -> Uuid {
    uuid::Builder::from_random_bytes(*uuid.as_bytes()).into_uuid()
}

fn title_case(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_match_the_original_generator() {
        let mut generator = RowGenerator::new(Some(7));
        for _ in 0..2_000 {
            let content = generator.content();
            match content.content_type {
                "podcast" => assert!((1200..=7200).contains(&content.length_seconds.unwrap_or(0))),
                "video" => assert!((300..=3600).contains(&content.length_seconds.unwrap_or(0))),
                _ => assert_eq!(content.length_seconds, None),
            }
            let event = generator.event(content.id);
            let payload: serde_json::Value = serde_json::from_str(&event.raw_payload).unwrap();
            assert!(payload["session_id"].is_string() && payload["user_agent"].is_string());
            assert_eq!(
                payload.get("click_position").is_some(),
                event.event_type == "click"
            );
            match event.event_type {
                "play" | "pause" => {
                    assert!((1000..=300_000).contains(&event.duration_ms.unwrap_or(0)))
                }
                _ => assert_eq!(event.duration_ms, None),
            }
        }
        assert_eq!(
            generator
                .users
                .iter()
                .collect::<std::collections::HashSet<_>>()
                .len(),
            USERS
        );
    }

    #[test]
    fn a_seed_gives_the_same_rows() {
        let a: Vec<_> = (0..5)
            .map({
                let mut g = RowGenerator::new(Some(1));
                move |_| g.content().slug
            })
            .collect();
        let b: Vec<_> = (0..5)
            .map({
                let mut g = RowGenerator::new(Some(1));
                move |_| g.content().slug
            })
            .collect();
        assert_eq!(a, b);
    }
}

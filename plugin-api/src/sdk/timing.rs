//! Per-stage timing for infer tasks: [`Laps`] names the time since the previous lap, and
//! its map goes into the result's `latencies.transform`, where MONAI Label reports its own
//! per-transform seconds.

use serde_json::{Map, Value};
use std::time::Instant;

/// A stopwatch that keeps one named lap per stage (a repeated name adds up).
#[derive(Debug)]
pub struct Laps {
    last: Instant,
    laps: Map<String, Value>,
}

impl Default for Laps {
    fn default() -> Self {
        Self::new()
    }
}

impl Laps {
    /// Starts the stopwatch now.
    pub fn new() -> Self {
        Self {
            last: Instant::now(),
            laps: Map::new(),
        }
    }

    /// Ends the lap `name` (seconds since the previous lap or the start); answers them.
    pub fn lap(&mut self, name: &str) -> f64 {
        let now = Instant::now();
        let secs = (now - self.last).as_secs_f64();
        self.last = now;
        let total = self.laps.get(name).and_then(Value::as_f64).unwrap_or(0.0) + secs;
        self.laps.insert(name.to_owned(), Value::from(total));
        secs
    }

    /// The seconds recorded under `name` (0 when none).
    pub fn get(&self, name: &str) -> f64 {
        self.laps.get(name).and_then(Value::as_f64).unwrap_or(0.0)
    }

    /// The laps, name → seconds.
    pub fn into_map(self) -> Map<String, Value> {
        self.laps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_laps_add_up_and_others_stay_apart() {
        let mut laps = Laps::new();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let first = laps.lap("model");
        laps.lap("post");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let second = laps.lap("model");
        assert!(first >= 0.005 && second >= 0.005);
        assert!((laps.get("model") - (first + second)).abs() < 1e-12);
        assert!(laps.get("post") < laps.get("model"));
        assert_eq!(laps.get("absent"), 0.0);
        assert_eq!(laps.into_map().len(), 2);
    }
}

//! The events `load` sends and `ceiling` produces: the same batch shape for both, so that the
//! server's figures and the bare producer's compare.

use clap::Args;
use raccoon_client::Event;

/// Batch shape options shared by `load` and `ceiling`.
#[derive(Args, Debug, Clone)]
pub(crate) struct WorkloadArgs {
    /// Events per batch.
    #[arg(long, default_value_t = 20)]
    pub(crate) batch: usize,
    /// Bytes per event.
    #[arg(long, default_value_t = 100)]
    pub(crate) event_bytes: usize,
    /// Event types, comma-separated; a batch holds runs of each in turn (as clients batch them),
    /// so each type is one topic.
    #[arg(long, value_delimiter = ',', default_value = "page,click")]
    pub(crate) types: Vec<String>,
}

impl WorkloadArgs {
    /// Checks the shape; the error names the bad value.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.batch == 0 || self.batch > 100_000 {
            return Err(format!("--batch {} is not 1..=100000", self.batch));
        }
        if self.event_bytes == 0 || self.event_bytes > 1_000_000 {
            return Err(format!("--event-bytes {} is not 1..=1000000", self.event_bytes));
        }
        if self.types.is_empty() || self.types.iter().any(|t| t.trim().is_empty()) {
            return Err(format!("--types {:?} needs non-empty names", self.types.join(",")));
        }
        Ok(())
    }

    /// The type of the event at `index` in a batch: `types` in runs.
    pub(crate) fn type_of(&self, index: usize) -> &str {
        let runs = self.types.len().min(self.batch);
        &self.types[(index * runs / self.batch).min(runs - 1)]
    }

    /// One batch's events; their data are shared by every batch (cheap clones).
    pub(crate) fn events(&self) -> Vec<Event> {
        (0..self.batch)
            .map(|i| {
                // Printable bytes, so the same events are valid in JSON requests' base64 and
                // readable in a consumer.
                let data: Vec<u8> = (0..self.event_bytes).map(|j| b'a' + ((i + j) % 26) as u8).collect();
                Event::new(self.type_of(i), data)
            })
            .collect()
    }

    /// Describes the shape for reports.
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({ "batch": self.batch, "event_bytes": self.event_bytes, "types": self.types })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(batch: usize, types: &[&str]) -> WorkloadArgs {
        WorkloadArgs { batch, event_bytes: 10, types: types.iter().map(|t| (*t).to_owned()).collect() }
    }

    #[test]
    fn types_come_in_runs() {
        let s = shape(4, &["a", "b"]);
        let got: Vec<&str> = (0..4).map(|i| s.type_of(i)).collect();
        assert_eq!(got, ["a", "a", "b", "b"]);
        let s = shape(1, &["a", "b", "c"]);
        assert_eq!(s.type_of(0), "a");
        let events = shape(5, &["x", "y", "z"]).events();
        assert_eq!(events.len(), 5);
        assert!(events.iter().all(|e| e.data.len() == 10));
        assert_eq!(events.iter().filter(|e| e.event_type == "x").count(), 2);
        assert_eq!(events.iter().filter(|e| e.event_type == "z").count(), 1);
    }

    #[test]
    fn bad_shapes_are_named() {
        assert!(shape(0, &["a"]).check().unwrap_err().contains("--batch 0"));
        assert!(shape(1, &[""]).check().unwrap_err().contains("--types"));
        assert!(shape(3, &["a"]).check().is_ok());
    }
}

//! The one table that says what a Kafka error means for the client: send the batch again
//! ([`Refusal::Retriable`]), never send it as it is ([`Refusal::Rejected`]), or the topic is
//! missing ([`Refusal::UnknownTopic`], answered as Raccoon answers it).
//!
//! Every librdkafka error a producer can see goes through [`refusal`], whether librdkafka refused
//! the event at once or reported it failed later. Errors not named here are retriable: a
//! transient error taken for a permanent one loses the batch (the client stops resending), while
//! a permanent one taken for transient costs only the client's bounded retries. The lists follow
//! Kafka's own split of its protocol errors into retriable and not (`RetriableException` in the
//! Java client) where the two meet the produce path.

use rdkafka::types::RDKafkaErrorCode as E;

use raccoon_core::handoff::Refusal;

/// Errors that no retry of the same events can cure.
const REJECTED: &[E] = &[
    // The record or its batch is larger than the broker (or librdkafka's message.max.bytes) takes.
    E::MessageSizeTooLarge,
    E::InvalidMessageSize,
    E::MessageBatchTooLarge,
    // The topic's name is not a valid Kafka topic name.
    E::InvalidTopic,
    // The server's credentials may not write this topic.
    E::TopicAuthorizationFailed,
    E::ClusterAuthorizationFailed,
    // The record's timestamp is out of the broker's accepted range.
    E::InvalidTimestamp,
    // The broker's validation refused the record (e.g. a compacted topic and no key).
    E::InvalidRecord,
    E::PolicyViolation,
    E::UnsupportedForMessageFormat,
    // Configuration the broker cannot honour: retrying with it fails the same way.
    E::InvalidRequiredAcks,
    E::UnsupportedVersion,
    E::UnsupportedCompressionType,
    // librdkafka's own refusals of the arguments.
    E::InvalidArgument,
    E::BadMessage,
];

/// Errors that mean the topic is not there (and not created).
const UNKNOWN_TOPIC: &[E] = &[E::UnknownTopic, E::UnknownTopicOrPartition, E::UnknownPartition];

/// What the client is told about an event that failed with `code`.
pub(crate) fn refusal(code: E) -> Refusal {
    if UNKNOWN_TOPIC.contains(&code) {
        Refusal::UnknownTopic
    } else if REJECTED.contains(&code) {
        Refusal::Rejected
    } else {
        Refusal::Retriable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_broker_outage_raises_is_retriable() {
        for code in [
            E::QueueFull,
            E::MessageTimedOut,
            E::AllBrokersDown,
            E::BrokerTransportFailure,
            E::Resolve,
            E::RequestTimedOut,
            E::NetworkException,
            E::NotEnoughReplicas,
            E::NotEnoughReplicasAfterAppend,
            E::LeaderNotAvailable,
            E::NotLeaderForPartition,
            E::BrokerNotAvailable,
            E::KafkaStorageError,
            E::PurgeQueue,
            E::PurgeInflight,
            E::Fatal,
            E::OutOfOrderSequenceNumber,
            E::UnknownProducerId,
            E::InvalidProducerEpoch,
            E::ThrottlingQuotaExceeded,
            E::InvalidMessage, // a corrupt record on the wire: Kafka retries it
        ] {
            assert_eq!(refusal(code), Refusal::Retriable, "{code:?}");
        }
    }

    #[test]
    fn what_no_retry_can_cure_is_rejected() {
        for code in [
            E::MessageSizeTooLarge,
            E::InvalidMessageSize,
            E::MessageBatchTooLarge,
            E::InvalidTopic,
            E::TopicAuthorizationFailed,
            E::ClusterAuthorizationFailed,
            E::InvalidTimestamp,
            E::InvalidRecord,
            E::PolicyViolation,
        ] {
            assert_eq!(refusal(code), Refusal::Rejected, "{code:?}");
        }
    }

    #[test]
    fn a_missing_topic_is_its_own_answer() {
        for code in UNKNOWN_TOPIC {
            assert_eq!(refusal(*code), Refusal::UnknownTopic, "{code:?}");
        }
    }

    #[test]
    fn no_code_is_listed_twice() {
        for code in REJECTED {
            assert!(!UNKNOWN_TOPIC.contains(code), "{code:?} is in both lists");
        }
        let mut seen = std::collections::HashSet::new();
        for code in REJECTED.iter().chain(UNKNOWN_TOPIC) {
            assert!(seen.insert(*code as i32), "{code:?} listed twice");
        }
    }
}

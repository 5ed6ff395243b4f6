//! Removing series: those of an instance that is gone, or of a watch that went back to
//! polling, so that every label set the registry exports belongs to something that exists.

use strum::VariantArray;

use super::Metrics;
use crate::argocd::stream::{EventKind, STREAM_FAILURES};
use crate::crd::Reason;

impl Metrics {
    /// Removes the watch series of an instance that polls again (its mode changed).
    pub fn forget_stream(&self, namespace: &str, instance: &str) {
        let labels = [namespace, instance];
        let _ = self.stream_relists.remove_label_values(&labels);
        let _ = self.stream_last_event.remove_label_values(&labels);
        let _ = self.stream_up.remove_label_values(&labels);
        for kind in EventKind::VARIANTS {
            let _ = self.stream_events.remove_label_values(&[namespace, instance, kind.into()]);
        }
        for reason in STREAM_FAILURES {
            let _ = self.stream_reconnects.remove_label_values(&[namespace, instance, reason]);
        }
    }

    /// Removes the series of every instance but those `exists` says yes to (after a relist).
    pub fn forget_instances_except(&self, exists: impl Fn(&str, &str) -> bool) {
        let known: Vec<(String, String)> =
            self.known_instances.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect();
        for (ns, name) in known.iter().filter(|(ns, name)| !exists(ns, name)) {
            self.forget_instance(ns, name);
        }
    }

    /// Removes every series of a deleted instance.
    pub fn forget_instance(&self, namespace: &str, instance: &str) {
        self.known_instances
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_string(), instance.to_string()));
        let labels = [namespace, instance];
        let _ = self.instance_up.remove_label_values(&labels);
        let _ = self.last_check.remove_label_values(&labels);
        let _ = self.last_success.remove_label_values(&labels);
        self.successes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_string(), instance.to_string()));
        let _ = self.data_age.remove_label_values(&labels);
        let _ = self.orphaned.remove_label_values(&labels);
        let _ = self.dangling.remove_label_values(&labels);
        let _ = self.credentials_expiry.remove_label_values(&labels);
        for state in ["linked", "unlinked"] {
            let _ = self.destinations.remove_label_values(&[namespace, instance, state]);
        }
        let mut known = self.known_destinations.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(before) = known.remove(&(namespace.to_string(), instance.to_string())) {
            self.remove_destination_series(namespace, instance, &before, None);
        }
        for reason in Reason::VARIANTS {
            let _ = self.request_errors.remove_label_values(&[namespace, instance, reason.as_str()]);
        }
        self.forget_stream(namespace, instance);
    }
}

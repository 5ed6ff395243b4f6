//! The controllers' watches: how they start again after losing the API server, how often
//! they retry, and how the watches of several namespaces make one stream for one store.

use std::collections::HashMap;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::Api;
use kube::Resource;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, Event};

/// The watch of `apis` (one per watched namespace, or one over all), each retried with
/// [`watch_retry`](super::backoff::watch_retry) on its own, as one stream that a single reflector store can follow.
///
/// A reflector swaps its whole store at every `InitDone`, so the raw events of two namespaces
/// cannot be interleaved: the first namespace to finish listing would drop the other's objects.
/// [`Merge`] therefore keeps what each namespace holds and turns every (re)list of one
/// namespace into a relist of them all.
pub(super) fn watch<K>(
    apis: Vec<Api<K>>,
    wc: watcher::Config,
) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watch_each(apis.into_iter().map(|api| (api, wc.clone())).collect())
}

/// [`watch`], each API with a configuration of its own (a field selector per object).
pub(super) fn watch_each<K>(
    apis: Vec<(Api<K>, watcher::Config)>,
) -> BoxStream<'static, watcher::Result<Event<K>>>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let mut watches: Vec<_> = apis
        .into_iter()
        .enumerate()
        .map(|(i, (api, wc))| {
            watch_one(api, wc).backoff(super::backoff::watch_retry()).map(move |e| (i, e)).boxed()
        })
        .collect();
    if watches.len() == 1 {
        return watches.remove(0).map(|(_, e)| e).boxed();
    }
    let n = watches.len();
    futures::stream::select_all(watches)
        .scan(Merge::new(n), |merge, (i, item)| {
            let out: Vec<_> = match item {
                Ok(event) => merge.step(i, event).into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            futures::future::ready(Some(futures::stream::iter(out)))
        })
        .flatten()
        .boxed()
}

/// A watcher that lists afresh when its connection to the API server fails, instead of
/// resuming from the resourceVersion it had: a restarted API server answers that with 410
/// Gone, but only once its watch cache is ready (20-80 s measured), which would leave argomap
/// blind that long. A fresh list is answered at once; the store swaps to it at `InitDone`.
fn watch_one<K>(
    api: Api<K>,
    wc: watcher::Config,
) -> impl futures::Stream<Item = watcher::Result<Event<K>>> + Send
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    type Inner<K> = futures::stream::BoxStream<'static, watcher::Result<Event<K>>>;
    futures::stream::unfold(None::<Inner<K>>, move |current| {
        let (api, wc) = (api.clone(), wc.clone());
        async move {
            let mut inner = current.unwrap_or_else(|| watcher::watcher(api, wc).boxed());
            let item = inner.next().await?;
            let lost =
                matches!(item, Err(watcher::Error::WatchStartFailed(_) | watcher::Error::WatchFailed(_)));
            Some((item, if lost { None } else { Some(inner) }))
        }
    })
}

/// The objects of several namespace watches, and the events that keep one reflector store
/// equal to their union. Until every namespace has listed once, nothing is emitted; then one
/// `Init`, every object, `InitDone`. Later `Apply`/`Delete` pass through; a namespace's relist
/// (after a lost watch) ends with a relist of the union, so what was deleted meanwhile is
/// pruned from the store as with a single watch. It holds a second copy of the objects, which
/// for the watched kinds (two small CRDs and Secret metadata) is cheap.
struct Merge<K: Resource<DynamicType = ()>> {
    known: Vec<HashMap<ObjectRef<K>, K>>,
    /// A namespace's list in progress, between its `Init` and `InitDone`.
    listing: Vec<Option<HashMap<ObjectRef<K>, K>>>,
    listed: Vec<bool>,
}

impl<K: Resource<DynamicType = ()> + Clone> Merge<K> {
    fn new(namespaces: usize) -> Self {
        Merge {
            known: (0..namespaces).map(|_| HashMap::new()).collect(),
            listing: (0..namespaces).map(|_| None).collect(),
            listed: vec![false; namespaces],
        }
    }

    /// What the store's stream gets for `event` of namespace `i`.
    fn step(&mut self, i: usize, event: Event<K>) -> Vec<Event<K>> {
        let ready = self.listed.iter().all(|l| *l);
        match event {
            Event::Init => {
                self.listing[i] = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(o) => {
                self.listing[i].get_or_insert_with(HashMap::new).insert(ObjectRef::from_obj(&o), o);
                Vec::new()
            }
            Event::InitDone => {
                self.known[i] = self.listing[i].take().unwrap_or_default();
                self.listed[i] = true;
                if !self.listed.iter().all(|l| *l) {
                    return Vec::new();
                }
                let mut out = vec![Event::Init];
                out.extend(self.known.iter().flat_map(|k| k.values().cloned()).map(Event::InitApply));
                out.push(Event::InitDone);
                out
            }
            Event::Apply(o) => {
                self.known[i].insert(ObjectRef::from_obj(&o), o.clone());
                if ready { vec![Event::Apply(o)] } else { Vec::new() }
            }
            Event::Delete(o) => {
                self.known[i].remove(&ObjectRef::from_obj(&o));
                if ready { vec![Event::Delete(o)] } else { Vec::new() }
            }
        }
    }
}

/// How long the API server keeps one watch open before argomap watches again from where it was.
pub const WATCH_SECONDS: u32 = 50;

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    fn cm(ns: &str, name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some(ns.into());
        c.metadata.name = Some(name.into());
        c
    }

    fn names(events: &[Event<ConfigMap>]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Init => "Init".into(),
                Event::InitDone => "InitDone".into(),
                Event::InitApply(o) => format!("InitApply {}", ObjectRef::from_obj(o)),
                Event::Apply(o) => format!("Apply {}", ObjectRef::from_obj(o)),
                Event::Delete(o) => format!("Delete {}", ObjectRef::from_obj(o)),
            })
            .collect()
    }

    /// Replays `events` into a reflector store, as the controllers do.
    fn store_after(events: Vec<Event<ConfigMap>>) -> Vec<String> {
        let (reader, mut writer) = kube::runtime::reflector::store::<ConfigMap>();
        for e in &events {
            writer.apply_watcher_event(e);
        }
        let mut keys: Vec<String> =
            reader.state().iter().map(|o| ObjectRef::from_obj(o.as_ref()).to_string()).collect();
        keys.sort();
        keys
    }

    #[test]
    fn two_namespaces_fill_one_store_and_a_relist_prunes_only_what_is_gone() {
        let mut m = Merge::<ConfigMap>::new(2);
        let mut all = Vec::new();
        // a lists first; nothing reaches the store until b has listed too.
        for e in [Event::Init, Event::InitApply(cm("a", "x")), Event::InitDone, Event::Apply(cm("a", "y"))] {
            assert!(m.step(0, e).is_empty());
        }
        assert!(m.step(1, Event::Init).is_empty());
        assert!(m.step(1, Event::InitApply(cm("b", "z"))).is_empty());
        let first = m.step(1, Event::InitDone);
        assert_eq!(first.first().map(|e| matches!(e, Event::Init)), Some(true));
        assert_eq!(first.last().map(|e| matches!(e, Event::InitDone)), Some(true));
        assert_eq!(first.len(), 5, "{:?}", names(&first));
        all.extend(first);
        assert_eq!(store_after(all.clone()), ["ConfigMap.v1./x.a", "ConfigMap.v1./y.a", "ConfigMap.v1./z.b"]);

        // Live events pass through.
        let live = m.step(1, Event::Apply(cm("b", "w")));
        assert_eq!(names(&live), ["Apply ConfigMap.v1./w.b"]);
        all.extend(live);
        // a loses its watch and lists again without y (deleted meanwhile): the union is relisted.
        assert!(m.step(0, Event::Init).is_empty());
        assert!(m.step(0, Event::InitApply(cm("a", "x"))).is_empty());
        let relist = m.step(0, Event::InitDone);
        all.extend(relist);
        assert_eq!(store_after(all.clone()), ["ConfigMap.v1./w.b", "ConfigMap.v1./x.a", "ConfigMap.v1./z.b"]);
        let gone = m.step(1, Event::Delete(cm("b", "z")));
        all.extend(gone);
        assert_eq!(store_after(all), ["ConfigMap.v1./w.b", "ConfigMap.v1./x.a"]);
    }
}

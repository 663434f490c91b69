//! A fault schedule: a seed turned into a list of steps over the clusters of one lane —
//! pod creates, updates and deletes interleaved with the faults `sim` can inject. The same
//! seed always gives the same steps (the timing of a run, and so what the informers see
//! between steps, is not reproducible; the steps are).
//!
//! The generator keeps a model of which pods exist on which cluster so that every update and
//! delete names a pod that exists when it runs, and it bounds the faults that make a
//! reflector back off (bursts, outages, restarts, stalls) so that one seed stays short: the
//! reflector's backoff doubles from 0.8 s and only resets after two healthy minutes.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use panoptes_actors::Stage;

/// SplitMix64: small, fast and good enough to pick steps; the test needs no crate for it.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5eed_f417_5c4e_d01e)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `low..=high`.
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A fault injected on one cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every open watch ends (a load balancer resetting connections).
    DropWatches,
    /// History and list snapshots forgotten: the next resume gets 410 Expired.
    Compact,
    /// The next `n` resource requests get 429 with `Retry-After: 1`.
    TooManyRequests(u32),
    /// The next `n` resource requests get 500.
    InternalErrors(u32),
    /// Every resource request waits this long, until [`Fault::LatencyOff`].
    Latency(Duration),
    LatencyOff,
    /// New watches stall (headers, then silence); open ones are dropped so that the
    /// reflector reconnects into the stall. Ended by [`Fault::StallOff`].
    Stall,
    /// Stalls end: new watches flow, the stalled ones are dropped.
    StallOff,
    /// The server goes away (connections refused) until [`Fault::Up`]; writes go on.
    Down,
    Up,
    /// The server restarts at once, keeping its state.
    Restart,
    /// The server restarts empty, as after restoring etcd from an empty backup: every
    /// object is gone and resourceVersions start low again (the informers' resume versions
    /// are "too large", so they relist).
    RestartLosingState,
    /// A stage of the cluster's pod pipeline panics (the informer's hidden fault hook); the
    /// pipeline restarts from a relist. The checks need no change: a restarted stage must
    /// still leave every cache equal to the server and every handler with a valid history.
    StagePanic(Stage),
}

impl Fault {
    /// The name the summary counts this kind under.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::DropWatches => "watch drop",
            Fault::Compact => "compaction (410)",
            Fault::TooManyRequests(_) => "429 burst",
            Fault::InternalErrors(_) => "500 burst",
            Fault::Latency(_) => "latency",
            Fault::LatencyOff => "latency off",
            Fault::Stall => "stall",
            Fault::StallOff => "stall off",
            Fault::Down => "down",
            Fault::Up => "up",
            Fault::Restart => "restart (state kept)",
            Fault::RestartLosingState => "restart (state lost)",
            Fault::StagePanic(Stage::Reflector) => "reflector panic",
            Fault::StagePanic(Stage::Fifo) => "FIFO panic",
            Fault::StagePanic(Stage::Indexer) => "indexer panic",
            Fault::StagePanic(Stage::Processor) => "processor panic",
        }
    }

    /// Whether this fault is an injected failure rather than the end of one.
    pub fn is_injection(&self) -> bool {
        !matches!(self, Fault::LatencyOff | Fault::StallOff | Fault::Up)
    }
}

/// One step of a schedule. `cluster` indexes the lane's clusters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create {
        cluster: usize,
        name: String,
    },
    Update {
        cluster: usize,
        name: String,
    },
    Delete {
        cluster: usize,
        name: String,
    },
    Fault {
        cluster: usize,
        fault: Fault,
    },
    /// Let the informers catch up a little before the next step (part of the interleaving,
    /// not a wait for anything).
    Pause(Duration),
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Create { cluster, name } => write!(f, "c{cluster} create {name}"),
            Step::Update { cluster, name } => write!(f, "c{cluster} update {name}"),
            Step::Delete { cluster, name } => write!(f, "c{cluster} delete {name}"),
            Step::Fault { cluster, fault } => write!(f, "c{cluster} fault {fault:?}"),
            Step::Pause(d) => write!(f, "pause {}ms", d.as_millis()),
        }
    }
}

/// What one seed runs.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub seed: u64,
    pub steps: Vec<Step>,
    /// Whether a cluster-wide pod informer runs beside the namespaced one (which then is a
    /// filtered view of it).
    pub cluster_wide: bool,
}

/// Faults that make a reflector back off, at most, per cluster and seed: with backoff doubling
/// from 0.8 s (jittered up to 2x), three cost at most 0.8·2 + 1.6·2 + 3.2·2 ≈ 11 s.
const MAX_DISRUPTIONS: u32 = 3;

struct ClusterModel {
    pods: BTreeSet<String>,
    next_pod: u32,
    down: bool,
    stalled: bool,
    latency: bool,
    lost_state: bool,
    disruptions: u32,
}

struct Generator {
    rng: SplitMix64,
    clusters: Vec<ClusterModel>,
}

impl Schedule {
    /// The schedule of `seed` over `clusters` clusters.
    pub fn generate(seed: u64, clusters: usize) -> Schedule {
        let mut generator = Generator {
            rng: SplitMix64::new(seed),
            clusters: (0..clusters)
                .map(|_| ClusterModel {
                    pods: BTreeSet::new(),
                    next_pod: 0,
                    down: false,
                    stalled: false,
                    latency: false,
                    lost_state: false,
                    disruptions: 0,
                })
                .collect(),
        };
        let cluster_wide = generator.rng.chance(50);
        let length = generator.rng.between(20, 60);
        let mut steps = Vec::with_capacity(length as usize + 8);
        for _ in 0..length {
            steps.push(generator.step());
        }
        // Heal what is still broken, so that convergence is what the checks measure.
        for (cluster, model) in generator.clusters.iter().enumerate() {
            let heal = [
                (model.down, Fault::Up),
                (model.stalled, Fault::StallOff),
                (model.latency, Fault::LatencyOff),
            ];
            for (_, fault) in heal.into_iter().filter(|(broken, _)| *broken) {
                steps.push(Step::Fault { cluster, fault });
            }
        }
        Schedule {
            seed,
            steps,
            cluster_wide,
        }
    }

    /// How many injected faults of each kind the schedule holds.
    pub fn faults(&self) -> impl Iterator<Item = &Fault> {
        self.steps.iter().filter_map(|step| match step {
            Step::Fault { fault, .. } if fault.is_injection() => Some(fault),
            _ => None,
        })
    }
}

impl Generator {
    fn step(&mut self) -> Step {
        let cluster = self.rng.below(self.clusters.len() as u64) as usize;
        match self.rng.below(100) {
            0..30 => self.create(cluster),
            30..55 => self.update(cluster).unwrap_or_else(|| self.create(cluster)),
            55..70 => self.delete(cluster).unwrap_or_else(|| self.create(cluster)),
            70..90 => self.fault(cluster),
            _ => Step::Pause(Duration::from_millis(self.rng.between(5, 80))),
        }
    }

    fn create(&mut self, cluster: usize) -> Step {
        let model = &mut self.clusters[cluster];
        let name = format!("p{:03}", model.next_pod);
        model.next_pod += 1;
        model.pods.insert(name.clone());
        Step::Create { cluster, name }
    }

    fn pick(&mut self, cluster: usize) -> Option<String> {
        let pods = &self.clusters[cluster].pods;
        if pods.is_empty() {
            return None;
        }
        let index = self.rng.below(pods.len() as u64) as usize;
        pods.iter().nth(index).cloned()
    }

    fn update(&mut self, cluster: usize) -> Option<Step> {
        let name = self.pick(cluster)?;
        Some(Step::Update { cluster, name })
    }

    fn delete(&mut self, cluster: usize) -> Option<Step> {
        let name = self.pick(cluster)?;
        self.clusters[cluster].pods.remove(&name);
        Some(Step::Delete { cluster, name })
    }

    fn fault(&mut self, cluster: usize) -> Step {
        let disrupted = self.clusters[cluster].disruptions >= MAX_DISRUPTIONS;
        let fault = loop {
            let model = &self.clusters[cluster];
            let candidate = match self.rng.below(13) {
                0 | 1 => Fault::DropWatches,
                2 | 3 => Fault::Compact,
                4 => Fault::TooManyRequests(self.rng.between(1, 2) as u32),
                5 => Fault::InternalErrors(self.rng.between(1, 3) as u32),
                6 if model.latency => Fault::LatencyOff,
                6 => Fault::Latency(Duration::from_millis(self.rng.between(20, 400))),
                7 if model.stalled => Fault::StallOff,
                7 => Fault::Stall,
                8 if model.down => Fault::Up,
                8 => Fault::Down,
                9 | 10 => Fault::Restart,
                11 => Fault::RestartLosingState,
                _ => Fault::StagePanic(Stage::ALL[self.rng.below(4) as usize]),
            };
            let disrupts = matches!(
                candidate,
                Fault::TooManyRequests(_)
                    | Fault::InternalErrors(_)
                    | Fault::Stall
                    | Fault::Down
                    | Fault::Restart
                    | Fault::RestartLosingState
                    | Fault::StagePanic(_)
            );
            // A restart while down would bring the server up behind the schedule's back. A
            // second state loss would start again from versions the informers may already
            // hold from after the first one, and a resume the server accepts cannot reveal the
            // loss (see `lane::RESOURCE_VERSION_FLOOR`).
            let conflicts = (model.down
                && matches!(candidate, Fault::Restart | Fault::RestartLosingState))
                || (model.lost_state && candidate == Fault::RestartLosingState);
            let over_budget = disrupts && disrupted;
            if !over_budget && !conflicts {
                break candidate;
            }
        };
        let model = &mut self.clusters[cluster];
        match fault {
            Fault::TooManyRequests(_)
            | Fault::InternalErrors(_)
            | Fault::Stall
            | Fault::Down
            | Fault::Restart
            | Fault::StagePanic(_) => model.disruptions += 1,
            Fault::RestartLosingState => {
                model.disruptions += 1;
                model.lost_state = true;
                model.pods.clear();
            }
            _ => {}
        }
        match fault {
            Fault::Latency(_) => model.latency = true,
            Fault::LatencyOff => model.latency = false,
            Fault::Stall => model.stalled = true,
            Fault::StallOff => model.stalled = false,
            Fault::Down => model.down = true,
            Fault::Up => model.down = false,
            _ => {}
        }
        Step::Fault { cluster, fault }
    }
}

#[test]
fn the_same_seed_gives_the_same_schedule_and_updates_name_existing_pods() {
    for seed in 0..200 {
        let a = Schedule::generate(seed, 2);
        let b = Schedule::generate(seed, 2);
        assert_eq!(a.steps, b.steps, "seed {seed}");
        let mut live: Vec<BTreeSet<String>> = vec![BTreeSet::new(); 2];
        let mut down = [false; 2];
        let mut losses = [0; 2];
        for step in &a.steps {
            match step {
                Step::Create { cluster, name } => {
                    assert!(live[*cluster].insert(name.clone()), "seed {seed}: {step}")
                }
                Step::Update { cluster, name } => {
                    assert!(live[*cluster].contains(name), "seed {seed}: {step}")
                }
                Step::Delete { cluster, name } => {
                    assert!(live[*cluster].remove(name), "seed {seed}: {step}")
                }
                Step::Fault { cluster, fault } => match fault {
                    Fault::RestartLosingState => {
                        live[*cluster].clear();
                        losses[*cluster] += 1;
                    }
                    Fault::Down => down[*cluster] = true,
                    Fault::Up => down[*cluster] = false,
                    _ => {}
                },
                Step::Pause(_) => {}
            }
        }
        assert_eq!(down, [false; 2], "seed {seed} ends with every server up");
        assert!(losses.iter().all(|n| *n <= 1), "seed {seed}: {losses:?}");
    }
}

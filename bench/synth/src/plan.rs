//! The shape of a synthetic heap: which blocks of nodes exist, where each starts (its ordinal),
//! which ids and strings it uses. Everything is arithmetic on these numbers, so the graph can be
//! walked again and again, in the same order, without being stored.
//!
//! Modelled on a Node.js 20 (V8 11.3) snapshot of a leaking app: the synthetic root with
//! `(GC roots)` and its 28 sub-roots, the `global` object, a native context, scripts,
//! builtins, internalized strings, per class a constructor/prototype/shape/methods and a holder
//! (an Array, a Map or Set with its hash table, or a closure's context), instances with strings,
//! heap numbers, nested objects, arrays, closures with contexts and concatenated strings, a
//! WeakMap with weak edges, transient requests, and the planted leak: a `Map` in a closure's
//! context (`cache`) holding `LeakedRequestContext` objects.
//!
//! Ids are tied to *logical* objects (class, instance number), not to positions, so the
//! snapshots of a series share ids for the objects they share, as V8's do.

use std::collections::HashMap;

/// Ids 1, 3, …, 59 are the root and `(GC roots)` sub-roots, as in V8.
pub(crate) const GC_SUBROOTS: &[&str] = &[
    "(Internalized strings)",
    "(External strings)",
    "(Read-only roots)",
    "(Strong roots)",
    "(Smi roots)",
    "(Bootstrapper)",
    "(Stack roots)",
    "(Relocatable)",
    "(Debugger)",
    "(Compilation cache)",
    "(Handle scope)",
    "(Builtins)",
    "(Global handles)",
    "(Traced handles)",
    "(Eternal handles)",
    "(Thread manager)",
    "(Strong roots)",
    "(Extensions)",
    "(Code flusher)",
    "(Startup object cache)",
    "(Read-only object cache)",
    "(Shareable object cache)",
    "(Weak collections)",
    "(Wrapper tracing)",
    "(Write barrier)",
    "(Retain maps)",
    "(Client heap)",
    "(Unknown)",
];

pub(crate) const SCRIPTS: usize = 40;
pub(crate) const BUILTINS: usize = 1500;
pub(crate) const INTERNED_VALUES: usize = 3000;
/// Entries of the WeakMap (weak edges to instances of the first class).
pub(crate) const WEAK_ENTRIES: u64 = 2000;
/// Even ids for embedder (native) nodes, far above the heap objects' odd ids.
pub(crate) const NATIVE_ID_BASE: u64 = 3_000_000_000;

/// Who holds a class's instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Holder {
    /// `global.storeX` → `Array` → `(object elements)` → element i.
    Array,
    /// `global.storeX` → `Map` → `table` → internal entries.
    Map,
    /// `global.storeX` → `Set` → `table` → internal entries.
    Set,
    /// `global.getX` → closure → context variable `items` → `Array` → elements.
    Closure,
}

/// One application class and its instances.
pub(crate) struct Class {
    pub(crate) name: u32,
    pub(crate) holder: Holder,
    /// Unique string fields per instance (0–2) and their property names and lengths.
    pub(crate) str_fields: Vec<(u32, usize)>,
    /// Heap-number fields (0–1).
    pub(crate) num_fields: Vec<u32>,
    pub(crate) nested: bool,
    pub(crate) array: bool,
    pub(crate) closure: bool,
    pub(crate) cons: bool,
    /// Instances link to a parent instance (k-1)/2: cross edges for the dominator tree.
    pub(crate) tree: bool,
    pub(crate) methods: Vec<u32>,
    pub(crate) count: u64,
    pub(crate) script: usize,
    pub(crate) line: u32,
    pub(crate) column: u32,
    // Ordinals.
    pub(crate) meta_start: u32,
    pub(crate) inst_start: u32,
    // Ids and strings.
    pub(crate) meta_ids: u64,
    pub(crate) inst_ids: u64,
    pub(crate) str_base: u32,
    pub(crate) cons_base: u32,
}

impl Class {
    /// Nodes of one instance.
    pub(crate) fn unit(&self) -> u32 {
        1 + self.str_fields.len() as u32
            + self.num_fields.len() as u32
            + u32::from(self.nested)
            + 2 * u32::from(self.array)
            + 2 * u32::from(self.closure)
            + u32::from(self.cons)
    }

    /// Nodes of the per-class block: ctor, ctor sfi, prototype, shape, handler sfi, 4 per
    /// method, then the holder.
    pub(crate) fn meta_nodes(&self) -> u32 {
        4 + u32::from(self.closure) + 4 * self.methods.len() as u32 + self.holder_nodes()
    }

    pub(crate) fn holder_nodes(&self) -> u32 {
        match self.holder {
            Holder::Array | Holder::Map | Holder::Set => 2,
            Holder::Closure => 4,
        }
    }

    pub(crate) fn holder_start(&self) -> u32 {
        self.meta_start + self.meta_nodes() - self.holder_nodes()
    }

    pub(crate) fn instance(&self, k: u64) -> u32 {
        self.inst_start + (k as u32) * self.unit()
    }
}

/// Generated string contents, by range of string indexes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dyn {
    /// The decimal index `i` (V8 names hash-table entries and root slots this way).
    Index,
    /// Source text of script `i`.
    Source,
    /// String field `field` of instance `i` of class `class`, about `len` characters.
    Field { class: u32, field: u32, len: usize },
    /// Concatenated-string label of instance `i` of `class`.
    Cons { class: u32 },
    /// Leaked object `i`'s URL.
    LeakUrl,
    /// Transient request body `i` of snapshot `t`.
    Body { t: u32 },
}

/// The string table: fixed (interned) strings first, then generated ranges.
pub(crate) struct Strings {
    pub(crate) fixed: Vec<String>,
    index: HashMap<String, u32>,
    pub(crate) ranges: Vec<(u32, u64, Dyn)>,
    pub(crate) total: u64,
    frozen: bool,
}

impl Strings {
    fn new() -> Strings {
        let mut s = Strings {
            fixed: Vec::new(),
            index: HashMap::new(),
            ranges: Vec::new(),
            total: 0,
            frozen: false,
        };
        s.intern("<dummy>");
        s
    }

    pub(crate) fn intern(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        assert!(!self.frozen, "string {s:?} interned after generated ranges");
        let i = self.fixed.len() as u32;
        self.fixed.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        self.total += 1;
        i
    }

    fn reserve(&mut self, count: u64, kind: Dyn) -> u32 {
        self.frozen = true;
        let base = self.total as u32;
        self.ranges.push((base, count, kind));
        self.total += count;
        base
    }
}

/// Hands out ordinals (in walk order) and ids.
struct Alloc {
    ordinal: u32,
    id: u64,
}

impl Alloc {
    fn nodes(&mut self, n: u64) -> u32 {
        let at = self.ordinal;
        self.ordinal = u32::try_from(u64::from(self.ordinal) + n).expect("too many nodes");
        at
    }
    /// A base for `n` logical objects: object x gets id base + 2x + 1.
    fn ids(&mut self, n: u64) -> u64 {
        let at = self.id;
        self.id += 2 * n;
        at
    }
}

/// What to generate.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// About how many nodes snapshot 0 has.
    pub(crate) nodes: u64,
    pub(crate) classes: usize,
    /// Snapshots in the series (1 for a single file).
    pub(crate) series: usize,
    /// Share of the nodes in the leak (snapshot 0).
    pub(crate) leak_share: f64,
    /// Leaked objects added per later snapshot, as a share of snapshot 0's.
    pub(crate) leak_growth: f64,
    pub(crate) seed: u64,
}

/// Nodes of one leaked object: the object, its URL, its headers, a heap number.
pub(crate) const LEAK_UNIT: u32 = 4;
/// Nodes of one transient request: the object and its body.
pub(crate) const TRANSIENT_UNIT: u32 = 2;

/// Everything needed to walk snapshot `t` of a series.
pub(crate) struct Plan {
    pub(crate) t: u32,
    pub(crate) strings: Strings,
    pub(crate) s: Names,
    pub(crate) classes: Vec<Class>,
    pub(crate) builtin_names: Vec<u32>,
    pub(crate) script_names: Vec<u32>,
    pub(crate) values: Vec<u32>,
    // Block starts (ordinals).
    pub(crate) globals: u32,
    pub(crate) shapes: u32,
    pub(crate) scripts: u32,
    pub(crate) builtins: u32,
    pub(crate) interned: u32,
    pub(crate) weak: u32,
    pub(crate) leak: u32,
    pub(crate) transient: u32,
    pub(crate) leak_units: u32,
    pub(crate) transient_units: u32,
    pub(crate) end: u32,
    pub(crate) leak_count: u64,
    pub(crate) transient_count: u64,
    // Id bases.
    pub(crate) fixed_ids: u64,
    pub(crate) leak_meta_ids: u64,
    pub(crate) leak_ids: u64,
    pub(crate) transient_ids: u64,
    // String bases.
    pub(crate) index_names: u32,
    pub(crate) index_count: u64,
    pub(crate) sources: u32,
    pub(crate) leak_urls: u32,
    pub(crate) bodies: u32,
}

/// Fixed strings the walk names nodes and edges with.
pub(crate) struct Names {
    pub(crate) empty: u32,
    pub(crate) subroots: Vec<u32>,
    pub(crate) gc_roots: u32,
    pub(crate) global: u32,
    pub(crate) isolate_data: u32,
    pub(crate) native_context: u32,
    pub(crate) map: u32,
    pub(crate) object: u32,
    pub(crate) cpp_roots: u32,
    pub(crate) cpp_xthread: u32,
    pub(crate) node_env: u32,
    pub(crate) system_map: u32,
    pub(crate) context: u32,
    pub(crate) shared: u32,
    pub(crate) prototype: u32,
    pub(crate) constructor: u32,
    pub(crate) proto: u32,
    pub(crate) initial_map: u32,
    pub(crate) script: u32,
    pub(crate) source: u32,
    pub(crate) name: u32,
    pub(crate) function_data: u32,
    pub(crate) feedback_cell: u32,
    pub(crate) bytecode: u32,
    pub(crate) feedback_cell_name: u32,
    pub(crate) elements: u32,
    pub(crate) object_elements: u32,
    pub(crate) table: u32,
    pub(crate) array: u32,
    pub(crate) map_class: u32,
    pub(crate) set_class: u32,
    pub(crate) weakmap_class: u32,
    pub(crate) system_context: u32,
    pub(crate) previous: u32,
    pub(crate) items: u32,
    pub(crate) heap_number: u32,
    pub(crate) self_: u32,
    pub(crate) first: u32,
    pub(crate) second: u32,
    pub(crate) parent: u32,
    pub(crate) options: u32,
    pub(crate) host: u32,
    pub(crate) retries: u32,
    pub(crate) on_done: u32,
    pub(crate) label: u32,
    pub(crate) kind: u32,
    pub(crate) global_proxy: u32,
    pub(crate) back_pointer: u32,
    pub(crate) get_items: u32,
    pub(crate) store_prefix: Vec<u32>,
    pub(crate) leak_class: u32,
    pub(crate) get_context: u32,
    pub(crate) cache: u32,
    pub(crate) hits: u32,
    pub(crate) url: u32,
    pub(crate) headers: u32,
    pub(crate) accept: u32,
    pub(crate) weak_cache: u32,
    pub(crate) pending: u32,
    pub(crate) pending_request: u32,
    pub(crate) body: u32,
    pub(crate) get_prefix: Vec<u32>,
}

/// Deterministic 64-bit mixing (splitmix64), so every choice is a function of its inputs.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const WORDS_A: &[&str] = &[
    "Order", "User", "Session", "Cache", "Request", "Response", "Payment", "Invoice", "Cart",
    "Product", "Price", "Token", "Account", "Queue", "Job", "Event", "Metric", "Span", "Trace",
    "Socket", "Stream", "Buffer", "Schema", "Query", "Route", "Plugin", "Render", "Template",
    "Config", "Feature", "Flag", "Audit",
];
const WORDS_B: &[&str] = &[
    "Service",
    "Entry",
    "Record",
    "Handler",
    "Store",
    "Model",
    "View",
    "State",
    "Context",
    "Manager",
    "Factory",
    "Builder",
    "Client",
    "Pool",
    "Worker",
    "Item",
    "Node",
    "Listener",
    "Descriptor",
    "Snapshot",
];
const PROPS: &[&str] = &[
    "id",
    "key",
    "value",
    "path",
    "method",
    "status",
    "createdAt",
    "updatedAt",
    "owner",
    "name",
    "title",
    "email",
    "token",
    "region",
    "locale",
    "version",
    "etag",
    "ref",
    "hash",
    "tag",
];
const METHODS: &[&str] = &[
    "get",
    "set",
    "update",
    "render",
    "toJSON",
    "handle",
    "validate",
    "serialize",
    "close",
    "open",
    "flush",
    "emit",
];

/// The class names: word pairs, then numbered ones when the pairs run out.
fn class_name(c: usize) -> String {
    let pairs = WORDS_A.len() * WORDS_B.len();
    let base = format!(
        "{}{}",
        WORDS_A[c % WORDS_A.len()],
        WORDS_B[(c / WORDS_A.len()) % WORDS_B.len()]
    );
    if c < pairs {
        base
    } else {
        format!("{base}{}", c / pairs)
    }
}

impl Plan {
    /// The plan of snapshot `t` (0-based) of the series `config` describes.
    pub(crate) fn new(config: &Config, t: u32) -> Plan {
        let mut st = Strings::new();
        let mut i = |s: &str| st.intern(s);
        let s = Names {
            empty: i(""),
            subroots: GC_SUBROOTS.iter().map(|n| i(n)).collect(),
            gc_roots: i("(GC roots)"),
            global: i("global"),
            isolate_data: i("Node / IsolateData"),
            native_context: i("system / NativeContext"),
            map: i("map"),
            object: i("Object"),
            cpp_roots: i("C++ roots"),
            cpp_xthread: i("C++ cross-thread roots"),
            node_env: i("Node / Environment"),
            system_map: i("system / Map"),
            context: i("context"),
            shared: i("shared"),
            prototype: i("prototype"),
            constructor: i("constructor"),
            proto: i("__proto__"),
            initial_map: i("initial_map"),
            script: i("script_or_debug_info"),
            source: i("source"),
            name: i("name"),
            function_data: i("function_data"),
            feedback_cell: i("feedback_cell"),
            bytecode: i("system / BytecodeArray"),
            feedback_cell_name: i("system / FeedbackCell"),
            elements: i("elements"),
            object_elements: i("(object elements)"),
            table: i("table"),
            array: i("Array"),
            map_class: i("Map"),
            set_class: i("Set"),
            weakmap_class: i("WeakMap"),
            system_context: i("system / Context"),
            previous: i("previous"),
            items: i("items"),
            heap_number: i("heap number"),
            self_: i("self"),
            first: i("first"),
            second: i("second"),
            parent: i("parent"),
            options: i("options"),
            host: i("host"),
            retries: i("retries"),
            on_done: i("onDone"),
            label: i("label"),
            kind: i("kind"),
            global_proxy: i("global_proxy_object"),
            back_pointer: i("constructor_or_back_pointer"),
            get_items: i("getItems"),
            store_prefix: Vec::new(),
            leak_class: i("LeakedRequestContext"),
            get_context: i("getContext"),
            cache: i("cache"),
            hits: i("hits"),
            url: i("url"),
            headers: i("headers"),
            accept: i("accept"),
            weak_cache: i("weakCache"),
            pending: i("pendingRequests"),
            pending_request: i("PendingRequest"),
            body: i("body"),
            get_prefix: Vec::new(),
        };
        let script_paths: Vec<String> = (0..SCRIPTS)
            .map(|k| match k {
                0 => "/srv/app/src/app.js".to_owned(),
                k if k % 5 == 4 => format!("node:internal/mod{k}"),
                k => format!(
                    "/srv/app/node_modules/pkg{}/lib/{}.js",
                    k / 5,
                    PROPS[k % PROPS.len()]
                ),
            })
            .collect();
        let script_names: Vec<u32> = script_paths.iter().map(|p| st.intern(p)).collect();
        let builtin_names: Vec<u32> = (0..BUILTINS)
            .map(|k| {
                st.intern(&format!(
                    "({}{}{} builtin)",
                    WORDS_A[k % WORDS_A.len()],
                    METHODS[(k / WORDS_A.len()) % METHODS.len()],
                    k / (WORDS_A.len() * METHODS.len())
                ))
            })
            .collect();
        let mut values: Vec<u32> = Vec::with_capacity(INTERNED_VALUES);
        for k in 0..INTERNED_VALUES {
            let v = match k {
                k if k < 100 => format!("h{k}.internal"),
                k if k < 200 => format!("{}/{}", PROPS[k % PROPS.len()], k),
                k => format!("{}-{}", METHODS[k % METHODS.len()].to_uppercase(), k),
            };
            values.push(st.intern(&v));
        }

        // Classes: the template is a function of the class number and the seed only, so a
        // series shares it.
        let mut classes = Vec::with_capacity(config.classes);
        let mut store_prefix = Vec::with_capacity(config.classes);
        let mut get_prefix = Vec::with_capacity(config.classes);
        for c in 0..config.classes {
            let r = mix(config.seed ^ (c as u64).wrapping_mul(0x1000_0001));
            let cname = class_name(c);
            let name = st.intern(&cname);
            store_prefix.push(st.intern(&format!("store{cname}")));
            get_prefix.push(st.intern(&format!("get{cname}s")));
            let n_str = (r % 3) as usize;
            let str_fields = (0..n_str)
                .map(|j| {
                    let p = st.intern(PROPS[(r as usize >> 8).wrapping_add(j) % PROPS.len()]);
                    let len = 6 + (mix(r + j as u64) % 90) as usize;
                    (p, len)
                })
                .collect();
            let num_fields = if (r >> 4).is_multiple_of(2) {
                vec![st.intern("score")]
            } else {
                Vec::new()
            };
            let methods = (0..((r >> 12) % 4) as usize)
                .map(|m| st.intern(METHODS[(c + m * 5) % METHODS.len()]))
                .collect();
            classes.push(Class {
                name,
                holder: match (r >> 20) % 4 {
                    0 => Holder::Array,
                    1 => Holder::Map,
                    2 => Holder::Set,
                    _ => Holder::Closure,
                },
                str_fields,
                num_fields,
                nested: (r >> 24).is_multiple_of(2),
                array: (r >> 25).is_multiple_of(4),
                closure: (r >> 27).is_multiple_of(5),
                cons: (r >> 30).is_multiple_of(6),
                tree: (r >> 33).is_multiple_of(3),
                methods,
                count: 0,
                script: c % SCRIPTS,
                line: 10 + ((r >> 36) % 900) as u32,
                column: 2 + ((r >> 46) % 30) as u32,
                meta_start: 0,
                inst_start: 0,
                meta_ids: 0,
                inst_ids: 0,
                str_base: 0,
                cons_base: 0,
            });
        }
        let s = Names {
            store_prefix,
            get_prefix,
            ..s
        };

        // How many of each: the leak and transients take their shares; the classes share the
        // rest with a Zipf-like tail (a few big classes, many small ones).
        let leak0 = ((config.nodes as f64 * config.leak_share) / f64::from(LEAK_UNIT)) as u64;
        let leak_at = |t: u32| leak0 + (leak0 as f64 * config.leak_growth * f64::from(t)) as u64;
        let leak_max = leak_at(config.series.saturating_sub(1) as u32);
        let transient_count = (config.nodes as f64 * 0.03 / f64::from(TRANSIENT_UNIT)) as u64;
        let fixed_estimate: u64 = 2000 + (BUILTINS + INTERNED_VALUES + 3 * SCRIPTS) as u64;
        let for_classes = config
            .nodes
            .saturating_sub(leak0 * u64::from(LEAK_UNIT))
            .saturating_sub(transient_count * u64::from(TRANSIENT_UNIT))
            .saturating_sub(fixed_estimate);
        let weights: Vec<f64> = (0..config.classes)
            .map(|c| 1.0 / (c as f64 + 1.0).powf(0.9))
            .collect();
        let total_w: f64 = weights.iter().sum();
        for (c, class) in classes.iter_mut().enumerate() {
            class.count =
                ((for_classes as f64 * weights[c] / total_w) / f64::from(class.unit())) as u64;
        }
        let max_entries = classes
            .iter()
            .map(|c| c.count)
            .max()
            .unwrap_or(0)
            .max(leak_max)
            .max(WEAK_ENTRIES)
            .max(INTERNED_VALUES as u64);
        let index_count = 3 * max_entries + 8;

        // Strings generated per index.
        let index_names = st.reserve(index_count, Dyn::Index);
        let sources = st.reserve(SCRIPTS as u64, Dyn::Source);
        for (c, class) in classes.iter_mut().enumerate() {
            for (j, &(_, len)) in class.str_fields.iter().enumerate() {
                let base = st.reserve(
                    class.count,
                    Dyn::Field {
                        class: c as u32,
                        field: j as u32,
                        len,
                    },
                );
                if j == 0 {
                    class.str_base = base;
                }
            }
            if class.cons {
                class.cons_base = st.reserve(class.count, Dyn::Cons { class: c as u32 });
            }
        }
        let leak_count = leak_at(t);
        let leak_urls = st.reserve(leak_count, Dyn::LeakUrl);
        let bodies = st.reserve(transient_count, Dyn::Body { t });

        // Ids: the same logical object gets the same id in every snapshot of the series.
        let mut a = Alloc { ordinal: 0, id: 60 };
        let fixed_ids =
            a.ids(100 + (BUILTINS + INTERNED_VALUES + 3 * SCRIPTS) as u64 + WEAK_ENTRIES + 64);
        for class in &mut classes {
            class.meta_ids = a.ids(u64::from(class.meta_nodes()));
            class.inst_ids = a.ids(class.count * u64::from(class.unit()));
        }
        let leak_meta_ids = a.ids(16);
        let mut transient_ids = 0;
        for k in 0..config.series as u32 {
            let base = a.ids(transient_count * u64::from(TRANSIENT_UNIT) + 4);
            if k == t {
                transient_ids = base;
            }
        }
        let leak_ids = a.ids(leak_max * u64::from(LEAK_UNIT) + 16);

        // Ordinals, in walk order.
        a.nodes(2 + GC_SUBROOTS.len() as u64);
        let globals = a.nodes(7);
        let shapes = a.nodes(8);
        let scripts = a.nodes(3 * SCRIPTS as u64);
        let builtins = a.nodes(BUILTINS as u64);
        let interned = a.nodes(INTERNED_VALUES as u64);
        for class in &mut classes {
            class.meta_start = a.nodes(u64::from(class.meta_nodes()));
        }
        let weak = a.nodes(2);
        let leak = a.nodes(9);
        let transient = a.nodes(2);
        for class in &mut classes {
            class.inst_start = a.nodes(class.count * u64::from(class.unit()));
        }
        let leak_units = a.nodes(leak_count * u64::from(LEAK_UNIT));
        let transient_units = a.nodes(transient_count * u64::from(TRANSIENT_UNIT));
        let end = a.ordinal;

        Plan {
            t,
            strings: st,
            s,
            classes,
            builtin_names,
            script_names,
            values,
            globals,
            shapes,
            scripts,
            builtins,
            interned,
            weak,
            leak,
            transient,
            leak_units,
            transient_units,
            end,
            leak_count,
            transient_count,
            fixed_ids,
            leak_meta_ids,
            leak_ids,
            transient_ids,
            index_names,
            index_count,
            sources,
            leak_urls,
            bodies,
        }
    }

    /// The string naming hash-table slot / root slot `i`.
    pub(crate) fn index_name(&self, i: u64) -> u64 {
        debug_assert!(i < self.index_count);
        u64::from(self.index_names) + i
    }

    /// Script id as locations give it.
    pub(crate) fn script_id(script: usize) -> u32 {
        100 + script as u32
    }
}

/// 4 KiB of text to cut generated strings from (cheap, and compresses like real text).
fn alphabet() -> &'static [u8] {
    const TEXT: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    static BUF: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BUF.get_or_init(|| {
        (0..4096u64)
            .map(|k| TEXT.as_bytes()[(mix(k) % TEXT.len() as u64) as usize])
            .collect()
    })
}

fn cut(seed: u64, len: usize, out: &mut String) {
    let a = alphabet();
    let mut at = (seed % 2048) as usize;
    let mut left = len;
    while left > 0 {
        let take = left.min(a.len() - at);
        out.push_str(std::str::from_utf8(&a[at..at + take]).unwrap_or(""));
        left -= take;
        at = 0;
    }
}

/// The content of generated string `i` of a range.
pub(crate) fn dyn_string(kind: Dyn, i: u64, out: &mut String) {
    use std::fmt::Write;
    out.clear();
    let _ = match kind {
        Dyn::Index => write!(out, "{i}"),
        Dyn::Source => {
            let _ = write!(
                out,
                "'use strict';\nconst v8 = require(\"v8\");\n// module {i}\nfunction f{i}() {{ return \"\\u00e9t\u{e9}\"; }}\n"
            );
            cut(mix(i), 1500 + (mix(i + 1) % 3000) as usize, out);
            Ok(())
        }
        Dyn::Field { class, field, len } => {
            let r = mix((u64::from(class) << 40) ^ (u64::from(field) << 32) ^ i);
            let _ = write!(out, "{class}:{field}:{i}:");
            let extra = (r % 16) as usize;
            cut(r, (len + extra).saturating_sub(out.len()).max(4), out);
            Ok(())
        }
        Dyn::Cons { class } => write!(out, "label {class}/{i} {:08x}", mix(i) as u32),
        Dyn::LeakUrl => write!(out, "/api/v1/orders/{i}?session={:016x}", mix(i ^ 0xABCD)),
        Dyn::Body { t } => {
            let r = mix((u64::from(t) << 48) ^ i);
            let _ = write!(out, "{{\"t\":{t},\"n\":{i},\"payload\":\"");
            cut(r, 64 + (r % 448) as usize, out);
            out.push_str("\"}");
            Ok(())
        }
    };
}

/// V8's self size of a sequential one-byte string.
pub(crate) fn string_size(len: usize) -> u64 {
    (((16 + len) + 7) & !7) as u64
}

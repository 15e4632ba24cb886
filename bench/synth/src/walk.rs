//! Walks the graph a [`Plan`] describes, node by node in ordinal order, reporting each node,
//! its edges and its location to a [`Sink`]. Every walk of one plan reports the same graph.

use std::io;

use crate::out::{EdgeType as E, NodeType as N, OBJECT_SHAPE, Sink};
use crate::plan::{
    BUILTINS, Class, GC_SUBROOTS, Holder, INTERNED_VALUES, LEAK_UNIT, NATIVE_ID_BASE, Plan,
    SCRIPTS, TRANSIENT_UNIT, WEAK_ENTRIES, mix, string_size,
};

/// Shapes block, in order.
const STRING_SHAPE: u32 = 0;
const NUMBER_SHAPE: u32 = 1;
const ARRAY_SHAPE: u32 = 2;
const CONTEXT_SHAPE: u32 = 3;
const CLOSURE_SHAPE: u32 = 4;
const PLAIN_SHAPE: u32 = 5;
const CODE_SHAPE: u32 = 6;
const GLOBAL_SHAPE: u32 = 7;

/// Globals block, in order.
const GLOBAL: u32 = 0;
const NATIVE_CONTEXT: u32 = 1;
const OBJECT_PROTO: u32 = 2;
const CPP_ROOTS: u32 = 3;
const CPP_XTHREAD: u32 = 4;
const NODE_ENV: u32 = 5;
const NODE_ENV_DATA: u32 = 6;

pub(crate) struct Walker<'a, S> {
    plan: &'a Plan,
    sink: &'a mut S,
    next: u32,
    /// Scratch for string contents (their lengths set string sizes).
    text: String,
}

/// Reports the whole graph of `plan` to `sink`.
pub(crate) fn walk<S: Sink>(plan: &Plan, sink: &mut S) -> io::Result<()> {
    let mut w = Walker {
        plan,
        sink,
        next: 0,
        text: String::new(),
    };
    w.roots()?;
    w.at(plan.globals)?;
    w.globals()?;
    w.at(plan.shapes)?;
    w.shapes()?;
    w.at(plan.scripts)?;
    w.scripts()?;
    w.at(plan.builtins)?;
    w.builtins()?;
    w.at(plan.interned)?;
    w.interned()?;
    for c in &plan.classes {
        w.at(c.meta_start)?;
        w.class_meta(c)?;
    }
    w.at(plan.weak)?;
    w.weak()?;
    w.at(plan.leak)?;
    w.leak()?;
    w.at(plan.transient)?;
    w.transient_holder()?;
    for (ci, c) in plan.classes.iter().enumerate() {
        w.at(c.inst_start)?;
        for k in 0..c.count {
            w.instance(ci, c, k)?;
        }
    }
    w.at(plan.leak_units)?;
    for k in 0..plan.leak_count {
        w.leak_unit(k)?;
    }
    w.at(plan.transient_units)?;
    for k in 0..plan.transient_count {
        w.transient_unit(k)?;
    }
    w.at(plan.end)
}

impl<S: Sink> Walker<'_, S> {
    /// Checks that the walk is where the plan says a block starts.
    fn at(&self, ordinal: u32) -> io::Result<()> {
        if self.next == ordinal {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "generator bug: block planned at node {ordinal}, walk is at {}",
                self.next
            )))
        }
    }

    fn node(&mut self, ty: N, name: u32, id: u64, size: u64) -> io::Result<()> {
        self.node_raw(ty as u8, name, id, size)
    }

    fn node_raw(&mut self, ty: u8, name: u32, id: u64, size: u64) -> io::Result<()> {
        self.next += 1;
        self.sink.node(ty, name, id, size)
    }

    fn e(&mut self, ty: E, name: u32, to: u32) -> io::Result<()> {
        self.sink.edge(ty, u64::from(name), to)
    }

    fn ei(&mut self, ty: E, index: u64, to: u32) -> io::Result<()> {
        self.sink.edge(ty, index, to)
    }

    /// An internal edge named by a slot number (as V8 names hash-table entries).
    fn slot(&mut self, ty: E, slot: u64, to: u32) -> io::Result<()> {
        let name = self.plan.index_name(slot);
        self.sink.edge(ty, name, to)
    }

    fn shape(&self, which: u32) -> u32 {
        self.plan.shapes + which
    }

    fn global(&self, which: u32) -> u32 {
        self.plan.globals + which
    }

    /// Id of a node in the fixed blocks (globals … interned strings, weak map, transient holder).
    fn fixed_id(&self, offset: u32) -> u64 {
        self.plan.fixed_ids + 2 * u64::from(offset) + 1
    }

    fn fixed_offset(&self) -> u32 {
        self.next - self.plan.globals
    }

    fn roots(&mut self) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        // The synthetic root: (GC roots), the global object as a user root, embedder roots.
        self.node(N::Synthetic, s.empty, 1, 0)?;
        self.ei(E::Element, 1, 1)?;
        self.e(E::Shortcut, s.global, self.global(GLOBAL))?;
        self.ei(E::Element, 3, self.global(CPP_ROOTS))?;
        self.ei(E::Element, 4, self.global(CPP_XTHREAD))?;
        self.ei(E::Element, 5, self.global(NODE_ENV))?;
        self.node(N::Synthetic, s.gc_roots, 3, 0)?;
        for k in 0..GC_SUBROOTS.len() {
            self.ei(E::Element, k as u64 + 1, 2 + k as u32)?;
        }
        for (k, &name) in s.subroots.iter().enumerate() {
            self.node(N::Synthetic, name, 5 + 2 * k as u64, 0)?;
            match GC_SUBROOTS[k] {
                "(Internalized strings)" => {
                    let mut slot = 0;
                    for v in 0..INTERNED_VALUES as u32 {
                        self.slot(E::Internal, slot, p.interned + v)?;
                        slot += 1;
                    }
                    for sc in 0..SCRIPTS as u32 {
                        self.slot(E::Internal, slot, p.scripts + 3 * sc + 1)?;
                        slot += 1;
                    }
                }
                "(Strong roots)" if k == 3 => {
                    self.slot(E::Internal, 0, self.global(NATIVE_CONTEXT))?;
                    self.slot(E::Internal, 1, self.global(GLOBAL))?;
                }
                "(Builtins)" => {
                    for b in 0..BUILTINS as u32 {
                        self.slot(E::Internal, u64::from(b), p.builtins + b)?;
                    }
                }
                "(Startup object cache)" => {
                    for sh in 0..8 {
                        self.slot(E::Internal, u64::from(sh), self.shape(sh))?;
                    }
                    self.slot(E::Internal, 8, self.global(OBJECT_PROTO))?;
                }
                "(Global handles)" => {
                    self.slot(E::Internal, 0, self.global(NODE_ENV_DATA))?;
                }
                "(Handle scope)" => {
                    // A handle to the leak's closure, as a running module would hold.
                    self.slot(E::Internal, 0, p.leak + 4)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn globals(&mut self) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        // global
        let id = self.fixed_id(self.fixed_offset());
        self.node(N::Object, s.global, id, 40)?;
        for (ci, c) in p.classes.iter().enumerate() {
            self.e(E::Property, c.name, c.meta_start)?;
            let name = match c.holder {
                Holder::Closure => s.get_prefix[ci],
                _ => s.store_prefix[ci],
            };
            self.e(E::Property, name, c.holder_start())?;
        }
        self.e(E::Property, s.leak_class, p.leak)?;
        self.e(E::Property, s.get_context, p.leak + 4)?;
        self.e(E::Property, s.weak_cache, p.weak)?;
        self.e(E::Property, s.pending, p.transient)?;
        self.e(E::Property, s.proto, self.global(OBJECT_PROTO))?;
        self.e(E::Internal, s.map, self.shape(GLOBAL_SHAPE))?;
        // native context
        let id = self.fixed_id(self.fixed_offset());
        self.node(N::Hidden, s.native_context, id, 2264)?;
        self.e(E::Internal, s.global_proxy, self.global(GLOBAL))?;
        self.e(E::Internal, s.map, self.shape(CONTEXT_SHAPE))?;
        // Object.prototype
        let id = self.fixed_id(self.fixed_offset());
        self.node(N::Object, s.object, id, 56)?;
        self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        // Embedder roots (even ids, as V8 gives native nodes).
        self.node(N::Synthetic, s.cpp_roots, NATIVE_ID_BASE, 0)?;
        self.node(N::Synthetic, s.cpp_xthread, NATIVE_ID_BASE + 2, 0)?;
        self.node(N::Native, s.node_env, NATIVE_ID_BASE + 4, 2592)?;
        self.e(E::Internal, s.context, self.global(NATIVE_CONTEXT))?;
        self.e(E::Internal, s.items, self.global(NODE_ENV_DATA))?;
        self.node(N::Native, s.isolate_data, NATIVE_ID_BASE + 6, 128)?;
        Ok(())
    }

    fn shapes(&mut self) -> io::Result<()> {
        let s = &self.plan.s;
        for _ in 0..8 {
            let id = self.fixed_id(self.fixed_offset());
            self.node_raw(OBJECT_SHAPE, s.system_map, id, 72)?;
            self.e(E::Internal, s.back_pointer, self.global(OBJECT_PROTO))?;
        }
        Ok(())
    }

    fn scripts(&mut self) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        for k in 0..SCRIPTS {
            let at = self.next;
            let id = self.fixed_id(self.fixed_offset());
            self.node(N::Code, p.script_names[k], id, 144)?;
            self.e(E::Internal, s.source, at + 2)?;
            self.e(E::Internal, s.name, at + 1)?;
            self.e(E::Internal, s.map, self.shape(CODE_SHAPE))?;
            let path_len = p.strings.fixed[p.script_names[k] as usize].len();
            let id = self.fixed_id(self.fixed_offset());
            self.node(N::String, p.script_names[k], id, string_size(path_len))?;
            self.e(E::Internal, s.map, self.shape(STRING_SHAPE))?;
            let source = p.sources + k as u32;
            crate::plan::dyn_string(crate::plan::Dyn::Source, k as u64, &mut self.text);
            let size = string_size(self.text.len());
            let id = self.fixed_id(self.fixed_offset());
            self.node(N::String, source, id, size)?;
            self.e(E::Internal, s.map, self.shape(STRING_SHAPE))?;
        }
        Ok(())
    }

    fn builtins(&mut self) -> io::Result<()> {
        let p = self.plan;
        for k in 0..BUILTINS {
            let id = self.fixed_id(self.fixed_offset());
            let size = 64 + 8 * (mix(k as u64) % 40);
            self.node(N::Code, p.builtin_names[k], id, size)?;
            self.e(E::Internal, p.s.map, self.shape(CODE_SHAPE))?;
        }
        Ok(())
    }

    fn interned(&mut self) -> io::Result<()> {
        let p = self.plan;
        for k in 0..INTERNED_VALUES {
            let name = p.values[k];
            let len = p.strings.fixed[name as usize].len();
            let id = self.fixed_id(self.fixed_offset());
            self.node(N::String, name, id, string_size(len))?;
            self.e(E::Internal, p.s.map, self.shape(STRING_SHAPE))?;
        }
        Ok(())
    }

    /// An interned value chosen by `r`.
    fn value(&self, r: u64) -> u32 {
        self.plan.interned + (r % INTERNED_VALUES as u64) as u32
    }

    fn class_meta(&mut self, c: &Class) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        let start = self.next;
        let mut local = 0u64;
        let mut id = || {
            local += 1;
            c.meta_ids + 2 * (local - 1) + 1
        };
        let script = p.scripts + 3 * c.script as u32;
        let script_id = Plan::script_id(c.script);
        let (ctor, ctor_sfi, proto, shape) = (start, start + 1, start + 2, start + 3);
        let methods = start + 4 + u32::from(c.closure);
        // constructor
        self.node(N::Closure, c.name, id(), 64)?;
        self.e(E::Property, s.prototype, proto)?;
        self.e(E::Internal, s.shared, ctor_sfi)?;
        self.e(E::Internal, s.context, self.global(NATIVE_CONTEXT))?;
        self.e(E::Internal, s.initial_map, shape)?;
        self.e(E::Internal, s.map, self.shape(CLOSURE_SHAPE))?;
        self.sink.location(script_id, c.line, c.column)?;
        // its shared function info
        self.node(N::Code, c.name, id(), 56)?;
        self.e(E::Internal, s.script, script)?;
        // prototype
        self.node(N::Object, s.object, id(), 24 + 8 * c.methods.len() as u64)?;
        self.e(E::Property, s.constructor, ctor)?;
        for (m, &name) in c.methods.iter().enumerate() {
            self.e(E::Property, name, methods + 4 * m as u32)?;
        }
        self.e(E::Property, s.proto, self.global(OBJECT_PROTO))?;
        self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        // instance shape
        self.node_raw(OBJECT_SHAPE, s.system_map, id(), 72)?;
        self.e(E::Internal, s.back_pointer, ctor)?;
        self.e(E::Internal, s.prototype, proto)?;
        if c.closure {
            // shared function info of the instances' `onDone` closures
            self.node(N::Code, s.on_done, id(), 56)?;
            self.e(E::Internal, s.script, script)?;
        }
        for (m, &name) in c.methods.iter().enumerate() {
            let at = self.next;
            self.node(N::Closure, name, id(), 56)?;
            self.e(E::Internal, s.feedback_cell, at + 3)?;
            self.e(E::Internal, s.shared, at + 1)?;
            self.e(E::Internal, s.context, self.global(NATIVE_CONTEXT))?;
            self.e(E::Internal, s.map, self.shape(CLOSURE_SHAPE))?;
            self.sink
                .location(script_id, c.line + 3 + 4 * m as u32, 2 + m as u32)?;
            self.node(N::Code, name, id(), 56)?;
            self.e(E::Internal, s.script, script)?;
            self.e(E::Internal, s.function_data, at + 2)?;
            self.node(N::Code, s.bytecode, id(), 88 + 16 * m as u64)?;
            self.e(E::Internal, s.map, self.shape(CODE_SHAPE))?;
            self.node(N::Code, s.feedback_cell_name, id(), 24)?;
            self.e(E::Internal, s.map, self.shape(CODE_SHAPE))?;
        }
        // holder
        let holder = self.next;
        let n = c.count;
        match c.holder {
            Holder::Array | Holder::Closure => {
                let array = if c.holder == Holder::Closure {
                    self.node(N::Closure, s.get_items, id(), 64)?;
                    self.e(E::Internal, s.context, holder + 1)?;
                    self.e(E::Internal, s.shared, ctor_sfi)?;
                    self.e(E::Internal, s.map, self.shape(CLOSURE_SHAPE))?;
                    self.sink.location(script_id, c.line + 40, 4)?;
                    self.node(N::Object, s.system_context, id(), 40)?;
                    self.e(E::Context, s.items, holder + 2)?;
                    self.e(E::Internal, s.previous, self.global(NATIVE_CONTEXT))?;
                    self.e(E::Internal, s.map, self.shape(CONTEXT_SHAPE))?;
                    holder + 2
                } else {
                    holder
                };
                self.node(N::Object, s.array, id(), 32)?;
                self.e(E::Internal, s.elements, array + 1)?;
                self.e(E::Internal, s.map, self.shape(ARRAY_SHAPE))?;
                self.node(N::Array, s.object_elements, id(), 16 + 8 * n)?;
                for k in 0..n {
                    self.ei(E::Element, k, c.instance(k))?;
                }
            }
            Holder::Map | Holder::Set => {
                let (name, entry) = if c.holder == Holder::Map {
                    (s.map_class, 3)
                } else {
                    (s.set_class, 2)
                };
                self.node(N::Object, name, id(), 32)?;
                self.e(E::Internal, s.table, holder + 1)?;
                self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
                self.node(N::Array, s.empty, id(), 8 * (entry * n + 3) + 16)?;
                for k in 0..n {
                    self.slot(E::Internal, entry * k + entry + 1, c.instance(k))?;
                }
            }
        }
        Ok(())
    }

    fn weak(&mut self) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        let base = p.interned + INTERNED_VALUES as u32 - p.globals;
        let table = self.next + 1;
        self.node(N::Object, s.weakmap_class, self.fixed_id(base), 32)?;
        self.e(E::Internal, s.table, table)?;
        self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        let first = p.classes.first();
        let n = first.map_or(0, |c| c.count.min(WEAK_ENTRIES));
        self.node(
            N::Array,
            s.empty,
            self.fixed_id(base + 1),
            8 * (3 * n + 3) + 16,
        )?;
        if let Some(c) = first {
            for k in 0..n {
                // Keys are held weakly; the values strongly.
                self.slot(E::Weak, 3 * k + 3, c.instance(k))?;
                self.slot(E::Internal, 3 * k + 4, self.value(k * 7))?;
            }
        }
        Ok(())
    }

    fn leak(&mut self) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        let start = self.next;
        let id = |k: u64| p.leak_meta_ids + 2 * k + 1;
        let script = p.scripts;
        let script_id = Plan::script_id(0);
        let (ctor, ctor_sfi, proto, shape, _closure, sfi, context, map, table) = (
            start,
            start + 1,
            start + 2,
            start + 3,
            start + 4,
            start + 5,
            start + 6,
            start + 7,
            start + 8,
        );
        // class LeakedRequestContext (app.js:12:14)
        self.node(N::Closure, s.leak_class, id(0), 64)?;
        self.e(E::Property, s.prototype, proto)?;
        self.e(E::Internal, s.shared, ctor_sfi)?;
        self.e(E::Internal, s.context, self.global(NATIVE_CONTEXT))?;
        self.e(E::Internal, s.initial_map, shape)?;
        self.e(E::Internal, s.map, self.shape(CLOSURE_SHAPE))?;
        self.sink.location(script_id, 11, 13)?;
        self.node(N::Code, s.leak_class, id(1), 56)?;
        self.e(E::Internal, s.script, script)?;
        self.node(N::Object, s.object, id(2), 24)?;
        self.e(E::Property, s.constructor, ctor)?;
        self.e(E::Property, s.proto, self.global(OBJECT_PROTO))?;
        self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        self.node_raw(OBJECT_SHAPE, s.system_map, id(3), 72)?;
        self.e(E::Internal, s.back_pointer, ctor)?;
        self.e(E::Internal, s.prototype, proto)?;
        // const getContext = memoize(...): the closure whose context holds `cache`
        self.node(N::Closure, s.get_context, id(4), 64)?;
        self.e(E::Internal, s.context, context)?;
        self.e(E::Internal, s.shared, sfi)?;
        self.e(E::Internal, s.map, self.shape(CLOSURE_SHAPE))?;
        self.sink.location(script_id, 40, 15)?;
        self.node(N::Code, s.get_context, id(5), 56)?;
        self.e(E::Internal, s.script, script)?;
        self.node(N::Object, s.system_context, id(6), 48)?;
        self.e(E::Context, s.cache, map)?;
        self.e(E::Context, s.hits, self.value(11))?;
        self.e(E::Internal, s.previous, self.global(NATIVE_CONTEXT))?;
        self.e(E::Internal, s.map, self.shape(CONTEXT_SHAPE))?;
        self.node(N::Object, s.map_class, id(7), 32)?;
        self.e(E::Internal, s.table, table)?;
        self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        let n = p.leak_count;
        // The table's id changes as it grows, as V8's does when a Map rehashes.
        self.node(
            N::Array,
            s.empty,
            id(8 + u64::from(p.t)),
            8 * (3 * n + 3) + 16,
        )?;
        for k in 0..n {
            let unit = p.leak_units + (k as u32) * LEAK_UNIT;
            self.slot(E::Internal, 3 * k + 3, unit + 1)?;
            self.slot(E::Internal, 3 * k + 4, unit)?;
        }
        Ok(())
    }

    fn transient_holder(&mut self) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        let base = p.interned + INTERNED_VALUES as u32 - p.globals + 2;
        let elements = self.next + 1;
        self.node(N::Object, s.array, self.fixed_id(base), 32)?;
        self.e(E::Internal, s.elements, elements)?;
        self.e(E::Internal, s.map, self.shape(ARRAY_SHAPE))?;
        let n = p.transient_count;
        // Its elements store is reallocated between snapshots: a new id each time.
        let id = p.transient_ids + 2 * (n * u64::from(TRANSIENT_UNIT)) + 1;
        self.node(N::Array, s.object_elements, id, 16 + 8 * n)?;
        for k in 0..n {
            self.ei(
                E::Element,
                k,
                p.transient_units + (k as u32) * TRANSIENT_UNIT,
            )?;
        }
        Ok(())
    }

    fn instance(&mut self, ci: usize, c: &Class, k: u64) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        let at = self.next;
        let r = mix(((ci as u64) << 40) ^ k);
        let mut local = 0u64;
        let base = c.inst_ids + 2 * k * u64::from(c.unit());
        let mut id = || {
            local += 1;
            base + 2 * (local - 1) + 1
        };
        let shape = c.meta_start + 3;
        let proto = c.meta_start + 2;
        let mut next = at + 1;
        let mut take = |n: u32| {
            let x = next;
            next += n;
            x
        };
        let strs: Vec<u32> = c.str_fields.iter().map(|_| take(1)).collect();
        let nums: Vec<u32> = c.num_fields.iter().map(|_| take(1)).collect();
        let nested = c.nested.then(|| take(1));
        let array = c.array.then(|| take(2));
        let closure = c.closure.then(|| take(2));
        let cons = c.cons.then(|| take(1));

        let props = c.str_fields.len() + c.num_fields.len() + 4;
        self.node(N::Object, c.name, id(), 16 + 8 * props as u64)?;
        for (j, &(name, _)) in c.str_fields.iter().enumerate() {
            self.e(E::Property, name, strs[j])?;
        }
        for (j, &name) in c.num_fields.iter().enumerate() {
            self.e(E::Property, name, nums[j])?;
        }
        self.e(E::Property, s.kind, self.value(r >> 3))?;
        if let Some(n) = nested {
            self.e(E::Property, s.options, n)?;
        }
        if let Some(a) = array {
            self.e(E::Property, s.items, a)?;
        }
        if let Some(cl) = closure {
            self.e(E::Property, s.on_done, cl)?;
        }
        if let Some(cs) = cons {
            self.e(E::Property, s.label, cs)?;
        }
        if c.tree && k > 0 {
            self.e(E::Property, s.parent, c.instance((k - 1) / 2))?;
        }
        self.e(E::Property, s.proto, proto)?;
        self.e(E::Internal, s.map, shape)?;
        self.sink
            .location(Plan::script_id(c.script), c.line, c.column)?;

        for (j, &(_, len)) in c.str_fields.iter().enumerate() {
            let name = c.str_base + (j as u64 * c.count + k) as u32;
            crate::plan::dyn_string(
                crate::plan::Dyn::Field {
                    class: ci as u32,
                    field: j as u32,
                    len,
                },
                k,
                &mut self.text,
            );
            let size = string_size(self.text.len());
            self.node(N::String, name, id(), size)?;
            self.e(E::Internal, s.map, self.shape(STRING_SHAPE))?;
        }
        for _ in &c.num_fields {
            self.node(N::Number, s.heap_number, id(), 16)?;
            self.e(E::Internal, s.map, self.shape(NUMBER_SHAPE))?;
        }
        if nested.is_some() {
            self.node(N::Object, s.object, id(), 40)?;
            self.e(E::Property, s.host, self.value(r % 100))?;
            self.e(E::Property, s.retries, self.value(r >> 17))?;
            self.e(E::Property, s.proto, self.global(OBJECT_PROTO))?;
            self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        }
        if let Some(a) = array {
            let len = 1 + (r >> 29) % 6;
            self.node(N::Object, s.array, id(), 32)?;
            self.e(E::Internal, s.elements, a + 1)?;
            self.e(E::Internal, s.map, self.shape(ARRAY_SHAPE))?;
            self.node(N::Array, s.object_elements, id(), 16 + 8 * len)?;
            for i in 0..len {
                self.ei(E::Element, i, self.value(r >> (i + 5)))?;
            }
        }
        if let Some(cl) = closure {
            self.node(N::Closure, s.on_done, id(), 56)?;
            self.e(E::Internal, s.context, cl + 1)?;
            self.e(E::Internal, s.shared, c.meta_start + 4)?;
            self.e(E::Internal, s.map, self.shape(CLOSURE_SHAPE))?;
            self.sink
                .location(Plan::script_id(c.script), c.line + 2, c.column + 18)?;
            self.node(N::Object, s.system_context, id(), 40)?;
            self.e(E::Context, s.self_, at)?;
            self.e(E::Internal, s.previous, self.global(NATIVE_CONTEXT))?;
            self.e(E::Internal, s.map, self.shape(CONTEXT_SHAPE))?;
        }
        if cons.is_some() {
            self.node(N::ConsString, c.cons_base + k as u32, id(), 32)?;
            self.e(E::Internal, s.first, self.value(r >> 7))?;
            self.e(E::Internal, s.second, self.value(r >> 13))?;
        }
        Ok(())
    }

    fn leak_unit(&mut self, k: u64) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        let at = self.next;
        let base = p.leak_ids + 2 * k * u64::from(LEAK_UNIT);
        let id = |j: u64| base + 2 * j + 1;
        let r = mix(k ^ 0x5EED);
        self.node(N::Object, s.leak_class, id(0), 56)?;
        self.e(E::Property, s.url, at + 1)?;
        self.e(E::Property, s.headers, at + 2)?;
        // An in-object double field shows as a hidden edge in V8 11.
        self.ei(E::Hidden, 2, at + 3)?;
        self.e(E::Property, s.proto, p.leak + 2)?;
        self.e(E::Internal, s.map, p.leak + 3)?;
        self.sink.location(Plan::script_id(0), 11, 13)?;
        crate::plan::dyn_string(crate::plan::Dyn::LeakUrl, k, &mut self.text);
        let size = string_size(self.text.len());
        self.node(N::String, p.leak_urls + k as u32, id(1), size)?;
        self.e(E::Internal, s.map, self.shape(STRING_SHAPE))?;
        self.node(N::Object, s.object, id(2), 40)?;
        self.e(E::Property, s.host, self.value(r % 100))?;
        self.e(E::Property, s.accept, self.value(r >> 9))?;
        self.e(E::Property, s.proto, self.global(OBJECT_PROTO))?;
        self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        self.node(N::Number, s.heap_number, id(3), 16)?;
        self.e(E::Internal, s.map, self.shape(NUMBER_SHAPE))
    }

    fn transient_unit(&mut self, k: u64) -> io::Result<()> {
        let p = self.plan;
        let s = &p.s;
        let at = self.next;
        let base = p.transient_ids + 2 * k * u64::from(TRANSIENT_UNIT);
        self.node(N::Object, s.pending_request, base + 1, 48)?;
        self.e(E::Property, s.body, at + 1)?;
        self.e(E::Property, s.proto, self.global(OBJECT_PROTO))?;
        self.e(E::Internal, s.map, self.shape(PLAIN_SHAPE))?;
        crate::plan::dyn_string(crate::plan::Dyn::Body { t: p.t }, k, &mut self.text);
        let size = string_size(self.text.len());
        self.node(N::String, p.bodies + k as u32, base + 3, size)?;
        self.e(E::Internal, s.map, self.shape(STRING_SHAPE))
    }
}

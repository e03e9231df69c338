"""How rules for one syscall combine: libseccomp 2.5's rule database, as a model.

runc, crun and youki hand every rule of a profile to libseccomp in the profile's order
(each name of `names` in turn; an entry whose `args` repeat an index becomes one rule
per condition). What a call then gets is decided by libseccomp's database (db.c,
db_rule_add), so ocirun reproduces it here, step for step:

- A syscall's first unconditional rule decides it: a later rule for that syscall,
  with or without conditions, is dropped, whatever its action.
- An unconditional rule after conditional ones replaces them all.
- Conditional rules are merged into one tree per syscall. A rule becomes a chain of
  32-bit comparisons (args in index order; on 64-bit ABIs each one is split into
  comparisons of the high and the low word, _chain64); chains that share leading
  comparisons share nodes. The nodes of one level are kept sorted, not in insertion
  order: higher argument index first, the high word before the low word, EQ/NE/
  MASKED_EQ before LT/LE before GT/GE, then by value (Node.order). A call walks a
  level in that order: a comparison whose branch has an action returns it, one whose
  branch has a sub-level goes there, and a comparison that decides nothing (or a
  sub-level that matches nothing) moves on to the next node of the level, and past
  the last one back up to the level above; nothing left: the default action.
- Merging (_add): where a new chain meets an existing node with the same comparison, an
  action on the existing node ends the new chain there (the shorter chain wins); an
  action on the new node replaces the existing sub-tree if that sub-tree only ever gives
  that same action; two different actions on one branch are an error (EEXIST) when
  either node is a leaf (on 64-bit ABIs, the high-word node of two GT/GE rules takes the
  action of the one with the larger value). Before merging, existing chains that the new
  one makes redundant are pruned (_prune), and a new chain that an existing shorter chain
  with the same action covers is dropped.

The functions mirror db.c's, reference counts included: whether a pruned node is gone
and whether a level can be collected depend on them. Two shortcuts give the same
results: _act_check looks at a shared node once (db.c walks every path to it), and a
single comparison added to a level of single comparisons skips _prune (which would
find nothing there). A node's actions carry `t_src` / `f_src`, the index of the profile
rule that set them, for `ocirun seccomp explain`. normalize.py adds the socketcall/ipc
forms; only conditional rules reach this module, imported on a cache miss.
"""

EEXIST = 17

# db_iter_state flags
MATCH = 0x1
MATCH_ONCE = 0x2
X_FINISHED = 0x10
N_FINISHED = 0x20
X_PREFIX = 0x100
N_PREFIX = 0x200
MATCHSET = MATCH | MATCH_ONCE
REDUNDANT = MATCH | X_FINISHED | N_PREFIX

EQ, NE, LT, LE, GT, GE, MASKED_EQ = ("SCMP_CMP_EQ", "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",
                                     "SCMP_CMP_GT", "SCMP_CMP_GE", "SCMP_CMP_MASKED_EQ")
_OP_PRI = {EQ: 3, NE: 3, MASKED_EQ: 3, LT: 2, LE: 2, GT: 1, GE: 1}
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1


class Conflict(Exception):
    """libseccomp refuses the rule (seccomp_rule_add fails, and runc and crun with it)."""


class Node:
    """One 32-bit comparison: (args[arg] word & mask) op datum; `hi`: the high word.
    `same` and `order` are db.c's _db_chain_eq and _db_chain_lt as keys."""
    __slots__ = ("arg", "hi", "op", "op_orig", "mask", "datum", "full", "same", "order",
                 "t_flg", "t_act", "t_src", "f_flg", "f_act", "f_src",
                 "nxt_t", "nxt_f", "prv", "nxt", "ref")

    def __init__(self, arg, hi, op, op_orig, mask, datum, full):
        self.arg = arg
        self.hi = hi
        self.op = op
        self.op_orig = op_orig
        self.mask = mask
        self.datum = datum = datum & mask
        self.full = full
        pri = (arg << 1) + (1 if hi else 0)
        self.same = (pri, op, datum, mask)
        # the same argument word and operator class: LT/LE by decreasing value
        self.order = (pri, _OP_PRI[op_orig], -datum if op_orig in (LT, LE) else datum)
        self.t_flg = self.f_flg = False
        self.t_act = self.f_act = 0
        self.t_src = self.f_src = None
        self.nxt_t = self.nxt_f = self.prv = self.nxt = None
        self.ref = 0

    def __repr__(self):
        return (f"<{'hi' if self.hi else 'lo'}(a{self.arg}) {self.op[9:]} {self.datum:#x}"
                f"/{self.mask:#x}>")


class Sys:
    """One syscall's entry: `chains` (the first node of the top level) or, without
    chains, the unconditional `action` (and the rule it came from). `flat`: the tree
    is known to be one level of single comparisons."""
    __slots__ = ("chains", "action", "src", "flat")

    def __init__(self, chains, action, src, flat):
        self.chains = chains
        self.action = action
        self.src = src
        self.flat = flat


# --- chains --------------------------------------------------------------------------

def _get(n):
    if n is not None:
        n.ref += 1
    return n


def _chain64(conds, action, src):
    """A rule's conditions -> its chain on a 64-bit ABI (db.c _db_rule_gen_64):
    GT/GE/LT/LE: hi > H, else hi == H and lo >(=) L; EQ/NE/MASKED_EQ: hi == H then
    lo == L. Returns the first node, or None for an unconditional rule."""
    head = None
    prev = None
    prev_op = None
    for arg, op, value, two in conds:
        if op == MASKED_EQ:
            mask, datum = value, two
            if not mask:
                continue        # (arg & 0) == x: no comparison at all
        else:
            mask, datum = U64, value
        mh, ml = mask >> 32, mask & U32
        dh, dl = datum >> 32, datum & U32
        if op in (GT, GE, LT, LE):
            c = [Node(arg, True, GT, op, mh, dh, datum), Node(arg, True, EQ, op, mh, dh, datum),
                 Node(arg, False, GT if op in (GT, LE) else GE, op, ml, dl, datum)]
            c[0].nxt_f = _get(c[1])
            c[1].nxt_t = _get(c[2])
        else:
            kind = MASKED_EQ if op == MASKED_EQ else EQ
            c = [Node(arg, True, kind, op, mh, dh, datum), Node(arg, False, kind, op, ml, dl, datum)]
            c[0].nxt_t = _get(c[1])
        if prev is None:
            head = _get(c[0])
        elif prev_op in (GT, GE):
            prev[0].nxt_t = _get(c[0])
            prev[2].nxt_t = _get(c[0])
        elif prev_op in (EQ, MASKED_EQ):
            prev[1].nxt_t = _get(c[0])
        elif prev_op in (LT, LE):
            prev[1].nxt_f = _get(c[0])
            prev[2].nxt_f = _get(c[0])
        else:   # NE
            prev[0].nxt_f = _get(c[0])
            prev[1].nxt_f = _get(c[0])
        prev, prev_op = c, op
    if prev is not None:
        if prev_op in (GT, GE):
            _act(prev[0], True, action, src)
            _act(prev[2], True, action, src)
        elif prev_op in (LT, LE):
            _act(prev[1], False, action, src)
            _act(prev[2], False, action, src)
        elif prev_op in (EQ, MASKED_EQ):
            _act(prev[1], True, action, src)
        else:
            _act(prev[0], False, action, src)
            _act(prev[1], False, action, src)
    return head


_REWRITE32 = {NE: (EQ, False), LT: (GE, False), LE: (GT, False)}


def _chain32(conds, action, src):
    """A rule's conditions -> its chain on a 32-bit ABI (db.c _db_rule_gen_32): one
    node per condition on the low word; NE, LT and LE become EQ, GE and GT taken on
    their false branch."""
    head = None
    prev = None
    on_true = True
    for arg, op, value, two in conds:
        if op == MASKED_EQ:
            mask, datum = value, two
            if not mask & U32:
                continue
        else:
            mask, datum = U64, value
        kind, branch = _REWRITE32.get(op, (op, True))
        n = Node(arg, False, kind, op, mask & U32, datum & U32, datum)
        if prev is None:
            head = _get(n)
        elif on_true:
            prev.nxt_t = _get(n)
        else:
            prev.nxt_f = _get(n)
        on_true = branch
        prev = n
    if prev is not None:
        _act(prev, on_true, action, src)
    return head


def _act(n, branch, action, src):
    if branch:
        n.t_flg, n.t_act, n.t_src = True, action, src
    else:
        n.f_flg, n.f_act, n.f_src = True, action, src


# --- the tree operations of db.c -----------------------------------------------------

def _leaf(n):
    return n.nxt_t is None and n.nxt_f is None


def _zombie(n):
    return n.nxt_t is None and n.nxt_f is None and not n.t_flg and not n.f_flg


def _put(n):
    """Drop a reference -> (nodes freed, what the caller's pointer becomes)."""
    if n is None:
        return 0, None
    n.ref -= 1
    if n.ref:
        return 0, n
    cnt = 0
    lp, ln, nt, nf = n.prv, n.nxt, n.nxt_t, n.nxt_f
    if lp is not None:
        lp.nxt = None
    if ln is not None:
        ln.prv = None
    if lp is not None:
        c, lp = _put(lp)
        cnt += c
    if ln is not None:
        c, ln = _put(ln)
        cnt += c
    if lp is not None:
        lp.nxt = _get(ln)
    if ln is not None:
        ln.prv = _get(lp)
    cnt += _tree_put(nt) + _tree_put(nf) + 1
    return cnt, lp if lp is not None else ln


def _tree_put(tree):
    cnt, tree = _put(tree)
    if tree is not None:
        cnt += _level_clean(tree)
    return cnt


def _level_clean(n):
    while n.prv is not None:
        n = n.prv
    start = n
    while n is not None:
        links = (n.prv is not None) + (n.nxt is not None)
        if n.ref > links:
            return 0
        n = n.nxt
    cnt = 0
    n = start
    while n is not None:
        c, n = _put(n)
        cnt += c
    return cnt


def _tree_remove(owner, attr, node):
    """Unlink `node` from the tree at owner.attr (and any node left without actions on
    the way) -> nodes freed."""
    tree = getattr(owner, attr)
    if tree is None or node is None:
        return 0
    cnt = 0
    c = tree
    while c.prv is not None:
        c = c.prv
    while True:
        if c is node:
            break
        cnt += _tree_remove(c, "nxt_t", node)
        cnt += _tree_remove(c, "nxt_f", node)
        if _zombie(c):
            break
        c = c.nxt
        if c is None or cnt:
            return cnt
    if c is getattr(owner, attr):
        setattr(owner, attr, c.prv if c.prv is not None else c.nxt)
    if c.prv is not None:
        c.prv.nxt = c.nxt
    if c.nxt is not None:
        c.nxt.prv = c.prv
    c.prv = c.nxt = None
    return cnt + _put(c)[0]


def _act_check(tree, action):
    """0 if every action in the tree's level (and below) is `action`, else -EEXIST.
    (db.c walks every path; chains share nodes, so each node is looked at once here.)"""
    seen = set()
    todo = [tree]
    while todo:
        c = todo.pop()
        if c is None:
            continue
        while c.prv is not None:
            c = c.prv
        while c is not None:
            if id(c) not in seen:
                seen.add(id(c))
                if (c.t_flg and c.t_act != action) or (c.f_flg and c.f_act != action):
                    return -EEXIST
                todo.append(c.nxt_t)
                todo.append(c.nxt_f)
            c = c.nxt
    return 0


def _prune(x, n, flags, action, sx):
    """Remove the parts of the existing tree (level of x) that the new chain n makes
    redundant (db.c _db_tree_prune) -> (nodes freed, the caller's flags updated with
    whether n matched an existing chain and which one is longer)."""
    cnt = 0
    new = flags
    if n is not None and x is not None and (flags & MATCHSET) != MATCH_ONCE:
        while x.prv is not None:
            x = x.prv
        while True:
            x_next = x.nxt
            if x.same == n.same:
                new |= MATCHSET
                if n.nxt_t is None and n.nxt_f is None:
                    new |= N_FINISHED
                if x.nxt_t is None and x.nxt_f is None:
                    new |= X_FINISHED
                if ((x.t_flg or x.nxt_t is not None) and not (n.t_flg or n.nxt_t is not None)) or \
                   ((x.f_flg or x.nxt_f is not None) and not (n.f_flg or n.nxt_f is not None)):
                    break
                if new & N_FINISHED and new & X_FINISHED and (
                        n.t_flg != x.t_flg or n.t_act != x.t_act or
                        n.f_flg != x.f_flg or n.f_act != x.f_act):
                    break
                gone = False
                for nb, true in ((n.nxt_t, True), (n.nxt_f, False)):
                    if nb is None:
                        continue
                    _get(x)
                    c, sub = _prune(x.nxt_t if true else x.nxt_f, nb, flags | MATCHSET, action, sx)
                    cnt += c
                    c, x = _put(x)
                    cnt += c
                    if sub & MATCH:
                        new |= sub
                    if x is None:
                        gone = True
                        break
                if not gone and new & MATCH:
                    # (the flags first: _act_check walks the whole sub-tree)
                    if new & N_FINISHED and new & X_PREFIX:
                        if not _act_check(x, action):             # the new chain is shorter
                            cnt += _tree_remove(sx, "chains", x)
                            if sx.chains is None:
                                break
                    elif new & X_FINISHED and new & N_PREFIX and not _act_check(x, action):
                        break                                     # the new chain is longer
            elif x.order < n.order:
                if flags & N_PREFIX:
                    break
                stop = False
                for true in (True, False):
                    xb = x.nxt_t if true else x.nxt_f
                    if xb is None:
                        continue
                    _get(x)
                    c, sub = _prune(xb, n, (flags & ~MATCH) | X_PREFIX, action, sx)
                    cnt += c
                    c, x = _put(x)
                    cnt += c
                    if sub & MATCH:
                        new |= sub
                        stop = True
                        break
                    if x is None:
                        break
                if stop:
                    break
            else:
                if flags & X_PREFIX:
                    break
                stop = False
                for nb in (n.nxt_t, n.nxt_f):
                    if nb is None:
                        continue
                    _get(x)
                    c, sub = _prune(x, nb, (flags & ~MATCH) | N_PREFIX, action, sx)
                    cnt += c
                    c, x = _put(x)
                    cnt += c
                    if sub & MATCH:
                        new |= sub
                        stop = True
                        break
                    if x is None:
                        break
                if stop:
                    break
            x = x_next
            if x is None:
                new &= ~MATCH
                break
    if new & MATCH:
        return cnt, flags | new
    return cnt, flags & ~MATCH


def _add(owner, attr, n):
    """Merge the new chain n into the level at owner.attr (db.c _db_tree_add);
    -> 0 or -EEXIST."""
    x = getattr(owner, attr)
    while True:
        if x.same == n.same:
            if n.t_flg:
                if not x.t_flg:
                    if _act_check(x.nxt_t, n.t_act):
                        return -EEXIST
                    _put(x.nxt_t)
                    x.nxt_t = None
                    _act(x, True, n.t_act, n.t_src)
                elif n.t_act != x.t_act:
                    if n.hi and n.full > x.full:
                        x.t_act, x.t_src = n.t_act, n.t_src
                    if _leaf(x) or _leaf(n):
                        return -EEXIST
            if n.f_flg:
                if not x.f_flg:
                    if _act_check(x.nxt_f, n.f_act):
                        return -EEXIST
                    _put(x.nxt_f)
                    x.nxt_f = None
                    _act(x, False, n.f_act, n.f_src)
                elif n.f_act != x.f_act:
                    if n.hi and n.full < x.full:
                        # as db.c has it: the true action is the one replaced here
                        x.t_act, x.t_src = n.t_act, n.t_src
                    if _leaf(x) or _leaf(n):
                        return -EEXIST
            for branch, flg in (("nxt_t", "t_flg"), ("nxt_f", "f_flg")):
                nb = getattr(n, branch)
                if nb is None:
                    continue
                if getattr(x, branch) is not None:
                    rc = _add(x, branch, nb)
                    if rc:
                        return rc
                elif not getattr(x, flg):
                    setattr(x, branch, _get(nb))
                else:
                    return 0            # the existing chain is shorter
            return 0
        if not x.order < n.order:
            if x.nxt is None:
                n.prv = _get(x)
                x.nxt = _get(n)
                return 0
            x = x.nxt
        else:
            if x.prv is not None:
                x.prv.nxt = _get(n)
                n.prv = x.prv
                x.prv = _get(n)
                n.nxt = x
            else:
                x.prv = _get(n)
                n.nxt = _get(x)
            if getattr(owner, attr) is x:
                setattr(owner, attr, _get(n))
                _put(x)
            return 0


def add(db, key, conds, action, src, wide):
    """Add one rule (conditions already in argument order) for syscall `key` to `db`
    (key -> Sys) as db.c's db_rule_add does. Raises Conflict where libseccomp fails
    with EEXIST."""
    chain = (_chain64 if wide else _chain32)(conds, action, src) if conds else None
    single = chain is not None and chain.nxt_t is None and chain.nxt_f is None
    s = db.get(key)
    if s is None:
        db[key] = Sys(chain, action, src, single)
        return
    pruned = False
    while True:
        if s.chains is None:
            if pruned:          # the new chain made every existing one redundant
                s.chains, s.action, s.src, s.flat = chain, action, src, single
            else:               # an unconditional rule came first: it stays
                _tree_put(chain)
            return
        if chain is None:       # an unconditional rule replaces all chains
            _tree_put(s.chains)
            s.chains, s.action, s.src = None, action, src
            return
        if single and s.flat:
            # one comparison into a level of single comparisons: _prune would remove
            # nothing, find nothing redundant and change no count; the level stays flat
            pass
        else:
            s.flat = False
            cnt, flags = _prune(s.chains, chain, 0, action, s)
            if cnt > 0:
                pruned = True
                if s.chains is None:
                    continue
            elif flags & REDUNDANT == REDUNDANT:
                _tree_put(chain)    # an existing shorter chain covers the new one
                return
        if _add(s, "chains", chain):
            raise Conflict()
        _tree_put(chain)
        return


def _start(n):
    while n.prv is not None:
        n = n.prv
    return n

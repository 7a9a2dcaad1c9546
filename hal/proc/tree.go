package proc

import (
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Children returns pid's direct children, ascending.
//
// With CONFIG_PROC_CHILDREN the kernel lists children per *thread*:
// /proc/PID/task/TID/children holds the processes whose real_parent is
// thread TID, i.e. the thread that called fork. A multi-threaded parent
// (any Go program, this daemon included) spreads its children over its
// threads' files and the leader's own file is often empty, so every
// thread's file is read and the lists merged. Without the option the
// files do not exist and the whole root is scanned for stat's ppid
// instead (ppid there is the parent's tgid, so it already merges threads).
//
// The kernel documents the children files as unreliable while the tree
// changes (it walks a list it may lose its place in); a child forked or
// reaped during the call may be missed or reported, as with any scan.
// Unreaped (zombie) children are listed: they are still children.
func (fs FS) Children(pid int) ([]int, error) {
	kids, ok, err := fs.childrenFiles(pid)
	if err != nil {
		return nil, err
	}
	if ok {
		return kids, nil
	}
	parents, err := fs.parentMap()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(fs.path(strconv.Itoa(pid), "stat")); err != nil {
		return nil, wrap(pid, err)
	}
	kids = parents[pid]
	slices.Sort(kids)
	return kids, nil
}

// childrenFiles reads and merges pid's task/*/children files. ok is false
// when the kernel does not provide them (probed on the leader's entry,
// which stays in task/ even after the leader thread exits, as a zombie,
// while other threads run on).
func (fs FS) childrenFiles(pid int) (kids []int, ok bool, err error) {
	taskDir := fs.path(strconv.Itoa(pid), "task")
	ents, err := os.ReadDir(taskDir)
	if err != nil {
		return nil, false, wrap(pid, err)
	}
	if _, err := os.Stat(fs.path(strconv.Itoa(pid), "task", strconv.Itoa(pid), "children")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, wrap(pid, err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(fs.path(strconv.Itoa(pid), "task", e.Name(), "children"))
		if err != nil {
			// The thread exited after readdir; its children, if any,
			// were reparented to another thread and show up there.
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				kids = append(kids, c)
			}
		}
	}
	slices.Sort(kids)
	return slices.Compact(kids), true, nil
}

// parentMap scans every process once: ppid -> children. Processes that
// vanish during the scan are skipped.
func (fs FS) parentMap() (map[int][]int, error) {
	pids, err := fs.Pids()
	if err != nil {
		return nil, err
	}
	m := make(map[int][]int)
	for _, p := range pids {
		pr, err := fs.fs.Proc(p)
		if err != nil {
			continue
		}
		st, err := pr.Stat()
		if err != nil {
			continue
		}
		m[st.PPID] = append(m[st.PPID], p)
	}
	return m, nil
}

// Descendants returns every process below pid (children, their children,
// ...), ascending, not including pid itself. Only pid vanishing is an
// error; descendants that exit during the walk are simply not followed.
//
// A process whose parent exits is reparented to the nearest subreaper or
// init, so it leaves pid's tree: an agent that double-forks escapes this
// walk (its cgroup, not the tree, is what contains it).
func (fs FS) Descendants(pid int) ([]int, error) {
	// The parent map is built at most once, the first time a process
	// without children files is met (in practice: all or none).
	var parents map[int][]int
	children := func(p int) ([]int, error) {
		kids, ok, err := fs.childrenFiles(p)
		if err != nil || ok {
			return kids, err
		}
		if parents == nil {
			if parents, err = fs.parentMap(); err != nil {
				return nil, err
			}
		}
		if _, err := os.Stat(fs.path(strconv.Itoa(p), "stat")); err != nil {
			return nil, wrap(p, err)
		}
		return parents[p], nil
	}
	queue, err := children(pid)
	if err != nil {
		return nil, err
	}
	// seen guards against a cycle, which a pid recycled mid-walk could
	// otherwise create.
	seen := map[int]bool{pid: true}
	var out []int
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
		kids, _ := children(p) // gone meanwhile: nothing to follow
		queue = append(queue, kids...)
	}
	slices.Sort(out)
	return out, nil
}

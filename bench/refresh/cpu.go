package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// cpuMeter adds up the CPU time used by this process (server and load
// generator) and, when PostgreSQL runs on this machine, by its server
// processes. CPU per operation is a steadier figure than throughput on a
// machine shared with other work: it says what one refresh costs, whoever
// else is running.
type cpuMeter struct {
	postmaster int // PID of the PostgreSQL postmaster, 0 if not local
}

// clockTick is the unit of /proc/*/stat times (USER_HZ, 100 on Linux).
const clockTick = 10 * time.Millisecond

// localPostmaster finds the postmaster of the server behind dsn if it runs
// on this machine, from the parent of this session's backend.
func localPostmaster(ctx context.Context, dsn string) int {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var backend int
	if err := conn.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return 0
	}
	f, ok := procStat(backend)
	if !ok || f.comm != "postgres" {
		return 0
	}
	if pm, ok := procStat(f.ppid); ok && pm.comm == "postgres" {
		return f.ppid
	}
	return 0
}

// sample returns the CPU time used so far.
func (m cpuMeter) sample() time.Duration {
	var total time.Duration
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if m.postmaster == 0 {
		return total
	}
	if pm, ok := procStat(m.postmaster); ok {
		// Its own time and that of backends that have exited.
		total += pm.utime + pm.stime + pm.cutime + pm.cstime
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if f, ok := procStat(pid); ok && f.ppid == m.postmaster {
			total += f.utime + f.stime
		}
	}
	return total
}

type stat struct {
	comm                         string
	ppid                         int
	utime, stime, cutime, cstime time.Duration
}

// procStat reads /proc/PID/stat.
func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	s := string(b)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return stat{}, false
	}
	f := strings.Fields(s[close+1:])
	// f[0] is field 3 (state); ppid is field 4, utime..cstime 14..17.
	if len(f) < 15 {
		return stat{}, false
	}
	num := func(i int) int64 { n, _ := strconv.ParseInt(f[i], 10, 64); return n }
	ticks := func(i int) time.Duration { return time.Duration(num(i)) * clockTick }
	return stat{
		comm:   s[open+1 : close],
		ppid:   int(num(1)),
		utime:  ticks(11),
		stime:  ticks(12),
		cutime: ticks(13),
		cstime: ticks(14),
	}, true
}

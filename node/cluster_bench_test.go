package node_test

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkClusterWrite measures record writes (Put, one record each) on a node of one replica
// and of three, with 1, 16 and 64 concurrent writers, each with a connection of its own to the
// leader's local socket. Raft runs over mutual TLS on loopback in both cases, with the node's
// default timeouts; every replica's log and database are on the same disk. It reports
// writes/s and the p50 and p99 latency of one Put. docs/performance.md has the figures.
// BenchmarkClusterWrite measures replicated writes through the leader's RecordService: writes/s,
// latency, and the process's CPU time per record (getrusage; the process holds the replicas and
// the writers, nothing else that runs). Single-record writers at 1, 16 and 64, and 4 writers of
// 1000-record PutBatch calls (batch=1000), each for one replica and for a group of three.
func BenchmarkClusterWrite(b *testing.B) {
	for _, replicas := range []int{1, 3} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("replicas=%d/writers=%d", replicas, writers), func(b *testing.B) {
				benchWrites(b, replicas, writers, 1)
			})
		}
		b.Run(fmt.Sprintf("replicas=%d/writers=4/batch=1000", replicas), func(b *testing.B) {
			benchWrites(b, replicas, 4, 1000)
		})
	}
}

// benchWrites has writers make calls of size records each (a Put, or a PutBatch): b.N calls of
// one record, or b.N/100 batches (at least five a writer), so that one -benchtime serves both.
func benchWrites(b *testing.B, replicas, writers, size int) {
	calls := int64(b.N)
	if size > 1 {
		calls = int64(max(5*writers, b.N/100))
	}
	c := clustertest.Start(b, clustertest.Options{Replicas: replicas, ElectionTimeout: -1})
	leader := c.Leader(b, 10*time.Second, c.Replicas...)
	clients := make([]pb.RecordServiceClient, writers)
	for w := range clients {
		clients[w] = pb.NewRecordServiceClient(leader.NewLocal(b))
		if _, err := clients[w].Put(clustertest.Call(b), &pb.PutRequest{Record: clustertest.Shelter(fmt.Sprintf("warm-%d", w), 1)}); err != nil {
			b.Fatal(err)
		}
	}
	write := func(w int, i int64) error {
		if size == 1 {
			_, err := clients[w].Put(clustertest.Call(b), &pb.PutRequest{Record: clustertest.Shelter(fmt.Sprintf("b%02d-%d", w, i), i)})
			return err
		}
		recs := make([]*pb.Record, size)
		for k := range recs {
			recs[k] = clustertest.Shelter(fmt.Sprintf("b%02d-%d-%d", w, i, k), i)
		}
		_, err := clients[w].PutBatch(clustertest.Call(b), &pb.PutBatchRequest{Records: recs})
		return err
	}
	lat := make([][]time.Duration, writers)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= calls; i = next.Add(1) {
				t0 := time.Now()
				if err := write(w, i); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	records := float64(len(all) * size)
	b.ReportMetric(records/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Microseconds())/records, "cpu-µs/record")
	b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
	b.ReportMetric(ms(all[(len(all)*99)/100]), "p99-ms")
	b.ReportMetric(0, "ns/op") // the rate above says it per record, without the writers' overlap
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkClusterFailover measures, b.N times, the time from killing the leader of a group of
// three (cut off from its group, then stopped) to a survivor acknowledging a write, with the
// node's default election timeout (500ms). The killed replica is restarted between rounds. It
// reports the minimum, median and maximum. The process version, with SIGKILL, is
// BenchmarkProcessFailover in node/clusterproc.
func BenchmarkClusterFailover(b *testing.B) {
	c := clustertest.Start(b, clustertest.Options{ElectionTimeout: -1})
	var took []time.Duration
	for range b.N {
		old := c.Leader(b, 20*time.Second, c.Replicas...)
		took = append(took, failover(b, c, old))
		old.Start(b)
		c.Converged(b, 20*time.Second, c.Replicas...)
	}
	ReportSpread(b, took)
}

// ReportSpread reports the minimum, median and maximum of ds in milliseconds.
func ReportSpread(b *testing.B, ds []time.Duration) {
	slices.Sort(ds)
	b.ReportMetric(ms(ds[0]), "min-ms")
	b.ReportMetric(ms(ds[len(ds)/2]), "median-ms")
	b.ReportMetric(ms(ds[len(ds)-1]), "max-ms")
	b.ReportMetric(0, "ns/op")
	b.Logf("failover times: %v", ds)
}

// BenchmarkIdleGroup measures what an idle group of three costs, and what a single writer waits,
// with the leader repeating the commit index to its followers every 5ms (hashicorp/raft's
// suggestion, the node's setting before) and every 50ms (the node's default now). The two groups
// run in turn, never together, in windows of KNOOPPUNT_BENCH_WINDOW (default 10s) after a second
// to settle, three rounds each, so that both see the machine alike; CPU is the process's own
// (getrusage), which holds the three in-process replicas and nothing else that runs. Then each
// group takes 300 single-record Puts, one at a time, for the p50 and p99 latency. Metrics per
// setting: idle-cores, p50-ms, p99-ms.
func BenchmarkIdleGroup(b *testing.B) {
	win := 10 * time.Second
	if v := os.Getenv("KNOOPPUNT_BENCH_WINDOW"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("KNOOPPUNT_BENCH_WINDOW: %v", err)
		}
		win = d
	}
	settings := []time.Duration{5 * time.Millisecond, 50 * time.Millisecond}
	idle := make([]time.Duration, len(settings))
	wall := make([]time.Duration, len(settings))
	lat := make([][]time.Duration, len(settings))
	for b.Loop() {
		for round := range 3 {
			for i, commit := range settings {
				c := clustertest.Start(b, clustertest.Options{ElectionTimeout: -1, CommitTimeout: commit})
				leader := c.Leader(b, 10*time.Second, c.Replicas...)
				leader.Put(b, clustertest.Shelter("warm", 1)) // a log entry for the followers to be sent
				time.Sleep(time.Second)                       // elections and connections settle
				cpu0, t0 := processCPU(b), time.Now()
				time.Sleep(win)
				idle[i] += processCPU(b) - cpu0
				wall[i] += time.Since(t0)
				if round == 0 {
					client := pb.NewRecordServiceClient(leader.NewLocal(b))
					for k := range 300 {
						t := time.Now()
						if _, err := client.Put(clustertest.Call(b), &pb.PutRequest{Record: clustertest.Shelter(fmt.Sprintf("w-%d", k), int64(k))}); err != nil {
							b.Fatal(err)
						}
						lat[i] = append(lat[i], time.Since(t))
					}
				}
				for _, r := range c.Replicas {
					r.Stop(b)
				}
			}
		}
	}
	b.ReportMetric(0, "ns/op")
	for i, commit := range settings {
		slices.Sort(lat[i])
		name := commit.String()
		b.ReportMetric(float64(idle[i])/float64(wall[i]), "idle-cores/"+name)
		b.ReportMetric(ms(lat[i][len(lat[i])/2]), "p50-ms/"+name)
		b.ReportMetric(ms(lat[i][len(lat[i])*99/100]), "p99-ms/"+name)
	}
}

// processCPU is the CPU time, user and system, the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

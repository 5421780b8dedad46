package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/knooppunt/knooppunt/node/clustertest"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// BenchmarkClusterWrite measures replicated writes through the leader's RecordService: records/s,
// the p50 and p99 latency of one call, and CPU time per record. Single-record writers (Put) at 1,
// 16 and 64, and 4 writers of 1000-record PutBatch calls (batch=1000), each for one replica and
// for a group of three; Raft runs over mutual TLS on loopback with the node's default timeouts,
// every replica's log and database on the same disk, each writer with a connection of its own to
// the leader's local socket. The writers run in a process of their own (this test binary again,
// see TestMain), so that cpu-µs/record is the group's own CPU, the servers' (getrusage of this
// process, which holds the replicas and nothing else that runs), and writers-cpu-µs/record the
// clients'. docs/performance.md has the figures.
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
	job, err := json.Marshal(writerJob{Socket: leader.SocketPath(), Writers: writers, Calls: calls, Size: size})
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), writersEnv+"="+string(job))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	lines := bufio.NewReader(out)
	if ready, err := lines.ReadString('\n'); err != nil || ready != "ready\n" {
		b.Fatalf("the writers' process did not start: %q %v", ready, err)
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	if _, err := io.WriteString(in, "go\n"); err != nil {
		b.Fatal(err)
	}
	var res writerResult
	if err := json.NewDecoder(lines).Decode(&res); err != nil {
		b.Fatalf("the writers' process: %v", err)
	}
	elapsed, cpu := time.Since(start), processCPU(b)-cpu0
	b.StopTimer()
	if res.Err != "" {
		b.Fatalf("a writer: %s", res.Err)
	}
	all := res.Latencies
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	records := float64(len(all) * size)
	b.ReportMetric(records/elapsed.Seconds(), "records/s")
	b.ReportMetric(float64(cpu.Microseconds())/records, "cpu-µs/record")
	b.ReportMetric(float64(res.CPU.Microseconds())/records, "writers-cpu-µs/record")
	b.ReportMetric(ms(all[len(all)/2]), "p50-ms")
	b.ReportMetric(ms(all[(len(all)*99)/100]), "p99-ms")
	b.ReportMetric(0, "ns/op") // the rate above says it per record, without the writers' overlap
}

// writersEnv carries a writerJob to this test binary run again as BenchmarkClusterWrite's writers.
const writersEnv = "KNOOPPUNT_BENCH_WRITERS"

// writerJob is the writers' work: Calls calls of Size records, by Writers writers at once, to
// the local socket Socket.
type writerJob struct {
	Socket        string
	Writers, Size int
	Calls         int64
}

// writerResult is what the writers' process answers: each call's latency, its own CPU time
// from "go" to the last answer, and the first error.
type writerResult struct {
	Latencies []time.Duration
	CPU       time.Duration
	Err       string
}

// TestMain runs the writers of BenchmarkClusterWrite when this binary is started as their
// process, and the tests otherwise.
func TestMain(m *testing.M) {
	if job := os.Getenv(writersEnv); job != "" {
		os.Exit(runWriters(job))
	}
	os.Exit(m.Run())
}

// runWriters connects the job's writers, each with a connection of its own, has each write one
// record, says "ready" on stdout, and on "go" from stdin makes the job's calls; then it writes a
// writerResult on stdout.
func runWriters(spec string) int {
	var job writerJob
	if err := json.Unmarshal([]byte(spec), &job); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", writersEnv, err)
		return 2
	}
	call := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), 10*time.Second)
	}
	clients := make([]pb.RecordServiceClient, job.Writers)
	for w := range clients {
		conn, err := grpc.NewClient("unix://"+job.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer conn.Close()
		clients[w] = pb.NewRecordServiceClient(conn)
		ctx, cancel := call()
		_, err = clients[w].Put(ctx, &pb.PutRequest{Record: clustertest.Shelter(fmt.Sprintf("warm-%d", w), 1)})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	write := func(w int, i int64) error {
		ctx, cancel := call()
		defer cancel()
		if job.Size == 1 {
			_, err := clients[w].Put(ctx, &pb.PutRequest{Record: clustertest.Shelter(fmt.Sprintf("b%02d-%d", w, i), i)})
			return err
		}
		recs := make([]*pb.Record, job.Size)
		for k := range recs {
			recs[k] = clustertest.Shelter(fmt.Sprintf("b%02d-%d-%d", w, i, k), i)
		}
		_, err := clients[w].PutBatch(ctx, &pb.PutBatchRequest{Records: recs})
		return err
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return 1
	}
	cpu0, err := cpuTime()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	lat := make([][]time.Duration, job.Writers)
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		first sync.Once
		res   writerResult
	)
	for w := range job.Writers {
		wg.Go(func() {
			for i := next.Add(1); i <= job.Calls; i = next.Add(1) {
				t0 := time.Now()
				if err := write(w, i); err != nil {
					first.Do(func() { res.Err = err.Error() })
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	cpu, err := cpuTime()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res.CPU = cpu - cpu0
	res.Latencies = slices.Concat(lat...)
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return 1
	}
	return 0
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
	cpu, err := cpuTime()
	if err != nil {
		b.Fatal(err)
	}
	return cpu
}

// cpuTime is the CPU time, user and system, the process has used (getrusage).
func cpuTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

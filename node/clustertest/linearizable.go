package clustertest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// RegisterInput is one operation on a record seen as a register: Put writes Value as the
// record's beds_free; Get reads it.
type RegisterInput struct {
	Put   bool
	Key   string
	Value int64
}

// RegisterOutput is what a Get returned: the record's beds_free, or 0 when it did not exist.
type RegisterOutput struct {
	Value int64
}

// RegisterModel is a register per record id: a Put sets it, a Get returns the latest value set,
// or 0 before any Put. The history is checked per record id.
var RegisterModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(RegisterInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return int64(0) },
	Step: func(state, input, output any) (bool, any) {
		in := input.(RegisterInput)
		if in.Put {
			return true, in.Value
		}
		return output.(RegisterOutput).Value == state.(int64), state
	},
	Equal: func(a, b any) bool { return a.(int64) == b.(int64) },
	DescribeOperation: func(input, output any) string {
		in := input.(RegisterInput)
		if in.Put {
			return fmt.Sprintf("put(%s, %d)", in.Key, in.Value)
		}
		return fmt.Sprintf("get(%s) -> %d", in.Key, output.(RegisterOutput).Value)
	},
	DescribeState: func(state any) string { return fmt.Sprint(state.(int64)) },
}

// History records concurrent Puts and strong Gets for a linearizability check.
//
// A Get that fails is left out: it observed nothing. A Put that fails may still have committed
// (the leader was lost between commit and answer), so it stays in the history as an operation
// that may take effect at any time after its call. Only failures that say the write was never
// attempted are left out: the forwarder's "no leader" and "not the leader either", which it
// answers before sending anything on, and grpc's failures to connect at all; and, from the
// clients of StartClients, every UNAVAILABLE of a replica that still ran when it answered, which
// the node promises means that nothing was done (docs/api.md): the check holds it to that.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
	// Indeterminate counts the Puts that failed without saying whether they committed.
	Indeterminate int
	// ArtifactDir is where Check writes the visualization of a history that fails. Default:
	// the system's temporary directory, which outlives the test.
	ArtifactDir string
}

// NewHistory starts an empty history.
func NewHistory() *History { return &History{start: time.Now()} }

func (h *History) now() int64 { return time.Since(h.start).Nanoseconds() }

func (h *History) add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// neverAttempted reports whether a failed write certainly did not reach the Raft log: any
// UNAVAILABLE that a running replica answered (live), or one of those that say so.
func neverAttempted(err error, live bool) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable {
		return false
	}
	return live || strings.HasPrefix(st.Message(), "no leader:") || strings.HasPrefix(st.Message(), "this replica is not the leader either") ||
		// grpc could not connect, to the replica or, forwarding, to the leader: nothing was sent.
		strings.Contains(st.Message(), "Error while dialing")
}

// Put writes value as the beds_free of record key, as client, and records the operation.
func (h *History) Put(ctx context.Context, c pb.RecordServiceClient, client int, key string, value int64) error {
	return h.put(ctx, c, client, key, value, nil)
}

// put is Put; live, when set, says whether the replica c calls still runs.
func (h *History) put(ctx context.Context, c pb.RecordServiceClient, client int, key string, value int64, live func() bool) error {
	call := h.now()
	_, err := c.Put(ctx, &pb.PutRequest{Record: Shelter(key, value)})
	ret := h.now()
	in := RegisterInput{Put: true, Key: key, Value: value}
	switch {
	case err == nil:
		h.add(porcupine.Operation{ClientId: client, Input: in, Call: call, Output: RegisterOutput{}, Return: ret})
	case neverAttempted(err, live != nil && live()):
	default:
		h.mu.Lock()
		h.Indeterminate++
		h.mu.Unlock()
		h.add(porcupine.Operation{ClientId: client, Input: in, Call: call, Output: RegisterOutput{}, Return: math.MaxInt64})
	}
	return err
}

// Get reads record key with strong consistency, as client, and records the operation.
func (h *History) Get(ctx context.Context, c pb.RecordServiceClient, client int, key string) error {
	call := h.now()
	r, err := c.Get(ctx, &pb.GetRequest{Id: key, Consistency: "strong"})
	ret := h.now()
	var v int64
	switch {
	case err == nil:
		if v, err = Free(r); err != nil {
			return err
		}
	case status.Code(err) == codes.NotFound:
		v = 0
	default:
		return err
	}
	h.add(porcupine.Operation{ClientId: client, Input: RegisterInput{Key: key}, Call: call, Output: RegisterOutput{Value: v}, Return: ret})
	return nil
}

// Len is the number of operations recorded.
func (h *History) Len() (puts, gets int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, op := range h.ops {
		if op.Input.(RegisterInput).Put {
			puts++
		} else {
			gets++
		}
	}
	return puts, gets
}

// Check fails the test unless the history is linearizable under RegisterModel. When it is not,
// it writes porcupine's visualization of the history to a file and names it.
func (h *History) Check(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	h.mu.Lock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	h.mu.Unlock()
	res, info := porcupine.CheckOperationsVerbose(RegisterModel, ops, timeout)
	switch res {
	case porcupine.Ok:
		return
	case porcupine.Unknown:
		tb.Fatalf("the linearizability check of %d operations did not finish within %s", len(ops), timeout)
	}
	f, err := os.CreateTemp(h.ArtifactDir, "kp-linearizability-*.html")
	if err == nil {
		err = porcupine.Visualize(RegisterModel, info, f)
		f.Close()
	}
	where := "could not write the visualization: " + fmt.Sprint(err)
	if err == nil {
		where = "visualization in " + f.Name()
	}
	tb.Fatalf("the history of %d operations is not linearizable (a read missed an acknowledged write, saw one undone, or saw a write its replica answered UNAVAILABLE); %s", len(ops), where)
}

// Clients are concurrent clients that Put and strongly Get a few records, each client on the
// local socket of one replica, and record every call in a History.
type Clients struct {
	h      *History
	stop   chan struct{}
	wg     sync.WaitGroup
	values atomic.Int64
	done   atomic.Int64
	gone   sync.Map // replica id → true once its clients are to stop
	halt   func()
}

// StartClients starts n clients, client i on replicas[i%len(replicas)], each choosing among keys
// records (lin-0 …) and between a Put of a new value and a Get at random, from a generator
// seeded with seed and i. A client whose call fails waits pause before the next, as its replica
// may have no leader for a while. The clients stop when the test ends, or at Stop.
func (h *History) StartClients(tb testing.TB, replicas []*Replica, n, keys int, seed uint64, pause time.Duration) *Clients {
	c := &Clients{h: h, stop: make(chan struct{})}
	for i := range n {
		r := replicas[i%len(replicas)]
		rc := pb.NewRecordServiceClient(r.NewLocal(tb))
		c.wg.Go(func() { c.run(i, r.ID, rc, rand.New(rand.NewPCG(uint64(i), seed)), keys, pause) })
	}
	c.halt = sync.OnceFunc(func() {
		close(c.stop)
		c.wg.Wait()
	})
	tb.Cleanup(c.halt)
	return c
}

func (c *Clients) run(i int, replica string, rc pb.RecordServiceClient, rng *rand.Rand, keys int, pause time.Duration) {
	wait := time.NewTimer(0)
	defer wait.Stop()
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		if _, gone := c.gone.Load(replica); gone {
			return
		}
		key := "lin-" + strconv.Itoa(rng.IntN(keys))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var err error
		if rng.IntN(2) == 0 {
			err = c.h.put(ctx, rc, i, key, c.values.Add(1), func() bool { _, gone := c.gone.Load(replica); return !gone })
		} else {
			err = c.h.Get(ctx, rc, i, key)
		}
		cancel()
		c.done.Add(1)
		if err != nil {
			wait.Reset(pause)
			select {
			case <-c.stop:
				return
			case <-wait.C:
			}
		}
	}
}

// Progress waits, up to within, until the clients have made n more calls, successful or not.
func (c *Clients) Progress(tb testing.TB, n int64, within time.Duration) {
	tb.Helper()
	target := c.done.Load() + n
	Eventually(tb, within, fmt.Sprintf("%d more operations", n), func() (bool, string) {
		return c.done.Load() >= target, fmt.Sprint(c.done.Load(), " done")
	})
}

// Drop stops the clients of one replica, as when its process is killed: their calls would only
// fail from then on.
func (c *Clients) Drop(replica string) { c.gone.Store(replica, true) }

// Stop stops every client and waits for them to return.
func (c *Clients) Stop() { c.halt() }

// CheckClients stops the clients and fails the test unless the history has at least minEach
// Puts and minEach Gets and is linearizable (Check).
func (h *History) CheckClients(tb testing.TB, c *Clients, minEach int, timeout time.Duration) {
	tb.Helper()
	c.Stop()
	puts, gets := h.Len()
	tb.Logf("history: %d puts (%d of unknown outcome), %d strong gets", puts, h.Indeterminate, gets)
	if puts < minEach || gets < minEach {
		tb.Fatalf("history too short to say anything: %d puts, %d gets", puts, gets)
	}
	h.Check(tb, timeout)
}

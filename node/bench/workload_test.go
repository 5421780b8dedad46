package bench

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/knooppunt/knooppunt/node"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// The reference data a generated record draws from. Municipalities and regions are real; the
// figures in the bodies are made up.
var (
	municipalities = []string{
		"Amersfoort", "Baarn", "Bunnik", "Bunschoten", "De Bilt", "De Ronde Venen", "Eemnes",
		"Houten", "IJsselstein", "Leusden", "Lopik", "Montfoort", "Nieuwegein", "Oudewater",
		"Renswoude", "Rhenen", "Soest", "Stichtse Vecht", "Utrecht", "Utrechtse Heuvelrug",
		"Veenendaal", "Vijfheerenlanden", "Wijk bij Duurstede", "Woerden", "Woudenberg", "Zeist",
		"Borsele", "Goes", "Hulst", "Kapelle", "Middelburg", "Noord-Beveland", "Reimerswaal",
		"Schouwen-Duiveland", "Sluis", "Terneuzen", "Tholen", "Veere", "Vlissingen",
	}
	sources = []string{"lcvs", "coa", "gemeente", "veiligheidsregio", "rode-kruis", "ggd-ghor"}
	crises  = []string{"oekraine", "hoogwater-maas", "hittegolf-2026", "stroomstoring-randstad",
		"vogelgriep-h5n1", "cyberaanval-ketens", "droogte-2026", "evacuatie-zeeland"}
	regions = func() []string {
		r := []string{"NL"}
		for i := 1; i <= 25; i++ {
			r = append(r, fmt.Sprintf("VR%02d", i))
		}
		return r
	}()
	// kindMix is the share of each kind in a mixed workload, out of 100.
	kindMix = []struct {
		kind  string
		share int
	}{{"shelter.capacity", 60}, {"sitrep", 10}, {"qa", 10}, {"guidance", 10}, {"signal", 10}}
)

// generator makes records with unique ids. Each writer owns one; it is not safe for concurrent
// use.
type generator struct {
	prefix string
	n      int
	rng    *rand.Rand
	// mixed spreads records over every kind and crisis; otherwise every record is a
	// shelter.capacity record of the oekraine crisis, as in the write-path benchmark.
	mixed bool
}

func newGenerator(prefix string, seed uint64, mixed bool) *generator {
	return &generator{prefix: prefix, rng: rand.New(rand.NewPCG(seed, 0x6b6e6f6f70756e74)), mixed: mixed}
}

func (g *generator) batch(n int) []*pb.Record {
	out := make([]*pb.Record, n)
	for i := range out {
		out[i] = g.record()
	}
	return out
}

func (g *generator) record() *pb.Record {
	g.n++
	r := g.rng
	muni := municipalities[r.IntN(len(municipalities))]
	kind, crisis := "shelter.capacity", "oekraine"
	if g.mixed {
		kind = pickKind(r)
		crisis = crises[r.IntN(len(crises))]
	}
	return &pb.Record{
		Id:             fmt.Sprintf("%s-%09d", g.prefix, g.n),
		Kind:           kind,
		Crisis:         crisis,
		Region:         regions[r.IntN(len(regions))],
		Classification: pb.Classification(1 + r.IntN(4)),
		Labels: map[string]string{
			"source":       sources[r.IntN(len(sources))],
			"municipality": label(muni),
		},
		Body: body(r, kind, muni),
	}
}

func pickKind(r *rand.Rand) string {
	x := r.IntN(100)
	for _, k := range kindMix {
		if x < k.share {
			return k.kind
		}
		x -= k.share
	}
	return kindMix[0].kind
}

// body is a compact JSON body of about 200 bytes that the kind's demo schema accepts.
func body(r *rand.Rand, kind, muni string) []byte {
	q := strconv.Quote
	switch kind {
	case "sitrep":
		return fmt.Appendf(nil, `{"title":%s,"summary":%s,"severity":%s}`,
			q("Situatiebeeld "+muni+" "+strconv.Itoa(r.IntN(1000))),
			q("Opvanglocaties in "+muni+" draaien op volle bezetting; extra bedden in overleg met het COA, stand om "+strconv.Itoa(8+r.IntN(12))+":00."),
			q([]string{"low", "medium", "high", "critical"}[r.IntN(4)]))
	case "qa":
		return fmt.Appendf(nil, `{"question":%s,"answer":%s,"audience":"publiek"}`,
			q("Waar kan ik mij in "+muni+" melden voor opvang?"),
			q("Meld u bij het gemeentehuis van "+muni+" of bel 14 0"+strconv.Itoa(10+r.IntN(89))+"; u krijgt binnen een dag een plek toegewezen."))
	case "guidance":
		return fmt.Appendf(nil, `{"title":%s,"text":%s,"url":"https://www.rijksoverheid.nl/onderwerpen/opvang"}`,
			q("Werkvergunning regeling "+strconv.Itoa(2026+r.IntN(2))),
			q("Ontheemden uit Oekraine mogen werken zonder tewerkstellingsvergunning; de werkgever meldt dit bij het UWV voor de start."))
	case "signal":
		return fmt.Appendf(nil, `{"summary":%s,"source":"monitor-%s","confidence":0.%02d}`,
			q("Toename van aanmeldingen in "+muni+" met "+strconv.Itoa(5+r.IntN(90))+" procent ten opzichte van vorige week; capaciteit loopt terug."),
			label(muni), r.IntN(100))
	default:
		total := 50 + r.IntN(450)
		return fmt.Appendf(nil, `{"municipality":%s,"location":%s,"beds_total":%d,"beds_free":%d,"contact_phone":"+31 30 %03d %04d","notes":"Opvang tot vrijdag; gezinnen met kinderen krijgen voorrang."}`,
			q(muni), q("Sporthal De Kruiskamp, "+muni), total, r.IntN(total+1), r.IntN(1000), r.IntN(10000))
	}
}

// startNode starts a node on a temporary data directory, as `knooppunt serve` would with no
// config file, and dials its local socket.
func startNode(tb testing.TB) (*node.Node, pb.RecordServiceClient) {
	tb.Helper()
	dir, err := os.MkdirTemp("", "knooppunt-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	cfg := config.Default()
	cfg.MetricsAddr = ""
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := node.Start(ctx, node.Options{DataDir: dir, Config: cfg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			tb.Error(err)
		}
	})
	conn, err := grpc.NewClient("unix://"+n.SocketPath(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(node.MaxMessageBytes), grpc.MaxCallSendMsgSize(node.MaxMessageBytes)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return n, pb.NewRecordServiceClient(conn)
}

// searchClient is a SearchService client on the node's local socket.
func searchClient(tb testing.TB, n *node.Node) pb.SearchServiceClient {
	return pb.NewSearchServiceClient(localConn(tb, n))
}

// localConn dials the node's local socket.
func localConn(tb testing.TB, n *node.Node) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient("unix://"+n.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(node.MaxMessageBytes)))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// nodeWrite writes recs through the node: Put for one record, PutBatch for more. Every record
// must be stored.
func nodeWrite(ctx context.Context, c pb.RecordServiceClient, recs []*pb.Record) error {
	if len(recs) == 1 {
		_, err := c.Put(ctx, &pb.PutRequest{Record: recs[0]})
		return err
	}
	resp, err := c.PutBatch(ctx, &pb.PutBatchRequest{Records: recs})
	if err != nil {
		return err
	}
	for _, r := range resp.Results {
		if r.Code != 0 {
			return fmt.Errorf("record %d refused: code %d: %s", r.Index, r.Code, r.Message)
		}
	}
	return nil
}

// rawDB is the baseline: the rows a node stores, inserted with go-sqlite3 directly.
//
// The file gets the node's own schema by running the node's migrations (db.Open), so tables and
// indexes are the same by construction. It is then opened in WAL mode with synchronous=FULL, so
// each commit is one fsync of the WAL, as each Raft entry is one fsync of the Raft WAL on the
// node (whose SQLite itself runs synchronous=NORMAL). One connection is shared by all writers:
// SQLite has one writer at a time, and a pool of connections would only add busy-waiting.
type rawDB struct {
	h      *sql.DB
	origin string
	seq    atomic.Int64
}

const (
	rawInsertRecord = `INSERT INTO records (id, origin, kind, crisis, region, classification, labels, body, version, updated_at, valid_until, tombstone, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)`
	rawInsertLabel  = `INSERT INTO record_labels (key, value, id) VALUES (?,?,?)`
)

func openRaw(tb testing.TB) *rawDB {
	tb.Helper()
	dir, err := os.MkdirTemp("", "knooppunt-bench-raw-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "raw.db")
	d, err := db.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := d.Close(); err != nil {
		tb.Fatal(err)
	}
	h, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		tb.Fatal(err)
	}
	h.SetMaxOpenConns(1)
	h.SetConnMaxLifetime(0)
	tb.Cleanup(func() { h.Close() })
	var mode string
	var sync int
	if err := h.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		tb.Fatal(err)
	}
	if err := h.QueryRow(`PRAGMA synchronous`).Scan(&sync); err != nil {
		tb.Fatal(err)
	}
	if mode != "wal" || sync != 2 {
		tb.Fatalf("baseline runs journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, sync)
	}
	return &rawDB{h: h, origin: config.DefaultOrg}
}

// insert writes recs in one transaction: per record the records row and one row per label, as
// the node's FSM does, with statements prepared once per transaction.
func (r *rawDB) insert(ctx context.Context, recs []*pb.Record) error {
	tx, err := r.h.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, rawInsertRecord)
	if err != nil {
		return err
	}
	defer ins.Close()
	lab, err := tx.PrepareContext(ctx, rawInsertLabel)
	if err != nil {
		return err
	}
	defer lab.Close()
	now := time.Now().UnixNano()
	for _, rec := range recs {
		labels, err := json.Marshal(rec.Labels)
		if err != nil {
			return err
		}
		if _, err := ins.ExecContext(ctx, rec.Id, r.origin, rec.Kind, rec.Crisis, rec.Region, int32(rec.Classification),
			string(labels), rec.Body, 1, now, 0, false, r.seq.Add(1)); err != nil {
			return err
		}
		for k, v := range rec.Labels {
			if _, err := lab.ExecContext(ctx, k, v, rec.Id); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// writeFunc writes one batch.
type writeFunc func(ctx context.Context, recs []*pb.Record) error

// window runs one writer per generator, each writing batches of size until the window closes,
// and returns the records written and the time until the last call returned. Calls in flight
// when the window closes are finished and counted.
func window(d time.Duration, gens []*generator, size int, write writeFunc) (int64, time.Duration, error) {
	var total atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	deadline := start.Add(d)
	for _, g := range gens {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				recs := g.batch(size)
				if err := write(ctx, recs); err != nil {
					once.Do(func() { firstErr = err; cancel() })
					return
				}
				total.Add(int64(len(recs)))
			}
		})
	}
	wg.Wait()
	return total.Load(), time.Since(start), firstErr
}

// envDuration reads a duration from the environment, or returns def.
func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// envInt reads an integer from the environment, or returns def.
func envInt(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// memStatus is this process's memory, in bytes, from /proc/self/status. The node runs in this
// process, so the figures include the benchmark's own client.
type memStatus struct {
	rss  int64 // VmRSS: resident now, including pages of the database file the reads map
	hwm  int64 // VmHWM: the most resident at once
	anon int64 // RssAnon: resident memory that is not a mapped file (heap, stacks, SQLite caches)
}

// procStatus reads this process's memStatus.
func procStatus() (m memStatus, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return m, err
	}
	defer f.Close()
	fields := map[string]*int64{"VmRSS": &m.rss, "VmHWM": &m.hwm, "RssAnon": &m.anon}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/self/status %s: %w", k, err)
		}
		*dst = kb << 10
	}
	return m, sc.Err()
}

// cpuTime is the user and system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dirSize is the total size of the regular files below dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

// quantile returns the q-quantile of sorted samples (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func sortedCopy(s []time.Duration) []time.Duration {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

package localnet

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"testing"

	"github.com/seqbook/seqbook/client/cluster"
)

// The tests start the test binary itself as every child: with
// fakeChildEnv set, TestMain runs fakeChild instead of the tests. It
// serves each kind's readiness probe on the address the cluster file gives
// its id, and misbehaves on request:
//
//	FAKE_CRASH=<id>        exit 3 at once, after a log line
//	FAKE_IGNORE_TERM=<id>  ignore SIGTERM (Stop must SIGKILL it)
//	FAKE_NEVER_READY=<id>  listen but answer 503 forever
const fakeChildEnv = "SEQBOOK_LOCALNET_FAKE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(fakeChildEnv) == "1" {
		os.Exit(fakeChild(os.Args[1:]))
	}
	os.Exit(m.Run())
}

func fakeChild(args []string) int {
	if len(args) < 1 {
		fmt.Println("fake: no kind")
		return 2
	}
	kind := args[0]
	fs := flag.NewFlagSet(kind, flag.ContinueOnError)
	clusterPath := fs.String("cluster", "", "")
	id := fs.String("id", AggregatorID, "")
	key := fs.String("key", "", "")
	data := fs.String("data", "", "")
	genesisPath := fs.String("genesis", "", "")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	fmt.Printf("fake %s %s starting\n", kind, *id)
	if os.Getenv("FAKE_CRASH") == *id {
		fmt.Printf("fake %s: boom, crashing on purpose\n", *id)
		return 3
	}
	c, err := cluster.Load(*clusterPath)
	if err != nil {
		fmt.Println("fake:", err)
		return 2
	}
	var addr, ready string
	switch kind {
	case KindSequencer:
		i, _ := c.NodeIndex(*id)
		addr, ready = c.Nodes[i].HTTP, "/node/ready"
	case KindReplica:
		i, _ := c.ReplicaIndex(*id)
		addr, ready = c.Replicas[i].HTTP, "/state"
		if _, err := os.Stat(*genesisPath); err != nil {
			fmt.Println("fake: genesis:", err)
			return 2
		}
	case KindAggregator:
		addr, ready = c.Aggregator.HTTP, "/ready"
	default:
		fmt.Println("fake: unknown kind", kind)
		return 2
	}
	if kind != KindAggregator {
		if _, err := os.ReadFile(*key); err != nil {
			fmt.Println("fake: key:", err)
			return 2
		}
		if st, err := os.Stat(*data); err != nil || !st.IsDir() {
			fmt.Println("fake: data dir missing")
			return 2
		}
	}
	if os.Getenv("FAKE_IGNORE_TERM") == *id {
		signal.Ignore(syscall.SIGTERM)
	} else {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM)
		go func() {
			<-sigs
			fmt.Printf("fake %s: SIGTERM, exiting\n", *id)
			os.Exit(0)
		}()
	}
	neverReady := os.Getenv("FAKE_NEVER_READY") == *id
	mux := http.NewServeMux()
	mux.HandleFunc(ready, func(w http.ResponseWriter, r *http.Request) {
		if neverReady {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"ready":true,"node":%q}`, *id)
	})
	fmt.Printf("fake %s listening on %s\n", *id, addr)
	if err := http.ListenAndServe(addr, mux); err != nil {
		fmt.Println("fake:", err)
		return 1
	}
	return 0
}

package federation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/knooppunt/knooppunt/federation/fedtest"
	"github.com/knooppunt/knooppunt/federation/identity"
	"github.com/knooppunt/knooppunt/federation/identity/identitytest"
	"github.com/knooppunt/knooppunt/federation/invite"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// TestReplacedBundleEndsOldConnections: a peer's CA key is stolen, and the peer hands over a
// new bundle, which `peer accept --replace` takes. A connection the thief made before, with an
// SVID of the old CA, is refused on its next call, and a subscription it opened ends at its
// next wake (review fed-adversary 2); a new handshake was refused already. A connection whose
// SVID has ended is closed after its next call.
func TestReplacedBundleEndsOldConnections(t *testing.T) {
	f := fedtest.Start(t, fedtest.Options{Orgs: 1, Heartbeat: 100 * time.Millisecond})
	a := f.Orgs[0]
	const td = "stolen.crisis.test"
	accept := func(ca *identity.DevCA, replace bool) {
		t.Helper()
		pem, err := identitytest.Bundle(ca).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		file, err := invite.Sign(invite.Invitation{Name: "gestolen", TrustDomain: td, Addresses: []string{"127.0.0.1:1"}, Bundle: string(pem),
			IssuedAt: now, ExpiresAt: now.Add(time.Hour)}, identitytest.SVID(t, ca, "/node/r1", identity.SVIDOptions{}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pb.NewPeerServiceClient(a.Local(t)).Accept(fedtest.Call(t), &pb.AcceptRequest{Invitation: file, Groups: []string{"all"}, Replace: replace}); err != nil {
			t.Fatalf("accept (replace %v): %v", replace, err)
		}
	}
	oldCA := identitytest.NewCA(t, td)
	accept(oldCA, false)
	stolen := identitytest.SVID(t, oldCA, "/node/r1", identity.SVIDOptions{})
	conn := identitytest.Dial(t, a.Addr, stolen, a.Bundle(), a.TD)
	describe := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := pb.NewFederationServiceClient(conn).Describe(ctx, &pb.DescribeRequest{})
		return err
	}
	fedtest.Eventually(t, 10*time.Second, "the peer's SVID is served before the replace", func() (bool, string) {
		err := describe()
		return err == nil, status.Convert(err).Message()
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub, err := pb.NewFederationServiceClient(conn).Subscribe(ctx, &pb.SubscribeRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Recv(); err != nil {
		t.Fatalf("subscribe: %v", err)
	}

	accept(identitytest.NewCA(t, td), true)
	if err := describe(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no longer verifies") {
		t.Errorf("a call on the connection made with the old CA's SVID after the replace: %v, want Unavailable, no longer verifies", err)
	}
	// The connection was closed: the client connects again, and its handshake is refused.
	fedtest.Eventually(t, 5*time.Second, "the connection closed, and a new one refused", func() (bool, string) {
		err := describe()
		return err != nil && !strings.Contains(err.Error(), "no longer verifies"), status.Convert(err).Message()
	})
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := sub.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	select {
	case err := <-ended:
		if status.Code(err) != codes.Unavailable {
			t.Errorf("the subscription opened under the old bundle ended with %v, want Unavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the subscription opened under the old bundle goes on 5 s after the replace")
	}

	// An officer's SVID of the org's own CA that ends while its connection is open.
	short := identitytest.SVID(t, a.CA, "/user/officer-a", identity.SVIDOptions{NotBefore: time.Now(), TTL: 3 * time.Second})
	own := identitytest.Dial(t, a.Addr, short, a.Bundle(), a.TD)
	status0 := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := pb.NewStatusServiceClient(own).Status(ctx, &pb.StatusRequest{})
		return err
	}
	if err := status0(); status.Code(err) == codes.Unavailable {
		t.Fatalf("a call with a current SVID: %v", err)
	}
	time.Sleep(time.Until(short.Certificates[0].NotAfter) + 100*time.Millisecond)
	// Served, since only its time ended (a renewed SVID would go on on the next connection), and
	// the connection closed after it: the next call needs a handshake, which the old SVID fails.
	if err := status0(); err != nil {
		t.Errorf("the first call on a connection whose SVID has just ended: %v, want it served", err)
	}
	fedtest.Eventually(t, 5*time.Second, "the connection of the ended SVID closed, and a new one refused", func() (bool, string) {
		err := status0()
		return err != nil, fmt.Sprint(err)
	})
}

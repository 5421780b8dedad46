package node

import "time"

// SetAPIAddressEvery sets how often a replica looks for replicas of its group that its
// raft.servers gives no API address (watchAPIAddresses), for the nodes started after it, and
// returns what sets it back.
func SetAPIAddressEvery(d time.Duration) (restore func()) {
	was := apiAddressEvery
	apiAddressEvery = d
	return func() { apiAddressEvery = was }
}

package db

// MarshalCanonical is the reference canonical encoding of an audit entry (json.Marshal of its
// fields), for the tests outside the package.
var MarshalCanonical = marshalCanonical

// SetTextIndexOff skips the full-text index (true) or keeps it (false), for the benchmark that
// measures the write path with and without it.
func SetTextIndexOff(off bool) { textIndexOff = off }

// SetTextShardBits sets log2 of the rows of a shard of the full-text index, and returns the
// size it had, for a test that searches across shards without writing 65,536 records.
func SetTextShardBits(bits int) int {
	old := textShardBits
	textShardBits = bits
	return old
}

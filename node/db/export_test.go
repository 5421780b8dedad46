package db

import "database/sql"

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

// TextVocabularyHas reports whether the full-text index's vocabulary holds word, and whether its
// trigram index finds it.
func TextVocabularyHas(d *DB, word string) (inTable, inTrigrams bool, err error) {
	err = d.read(func(ro *sql.DB) error {
		if err := ro.QueryRow(`SELECT EXISTS (SELECT 1 FROM text_words WHERE word = ?)`, word).Scan(&inTable); err != nil {
			return err
		}
		return ro.QueryRow(`SELECT EXISTS (SELECT 1 FROM text_vocab WHERE text_vocab MATCH ? AND word = ?)`, ftsString(word), word).Scan(&inTrigrams)
	})
	return inTable, inTrigrams, err
}

// TextOwnWord reports whether the vocabulary marks word as one that own records hold.
func TextOwnWord(d *DB, word string) (own bool, err error) {
	err = d.read(func(ro *sql.DB) error {
		return ro.QueryRow(`SELECT EXISTS (SELECT 1 FROM text_words AS w JOIN text_own_words AS o ON o.id = w.id WHERE w.word = ?)`, word).Scan(&own)
	})
	return own, err
}

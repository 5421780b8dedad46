package search

import (
	"context"
	"slices"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/knooppunt/knooppunt/federation/peerserver"
	"github.com/knooppunt/knooppunt/node/config"
	"github.com/knooppunt/knooppunt/node/db"
	"github.com/knooppunt/knooppunt/node/record"
	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// SuggestTrailer is the trailer in which Search offers, for a search on words that found fewer
// than SuggestBelow records, the same words with a misspelt one replaced by a word of this node's
// index ("vergunnign" → "vergunning"): a Filter.text to search with, the person's to choose. A
// -bin key, so that a folded word that is not ASCII (ø, ß, Cyrillic) travels as it is.
//
// The suggestion is made here alone, from what this node holds: no partner is asked. The index's
// vocabulary holds the words of every record, of every mode and of every partner cached, so a
// word is offered only once the corrected search, run as this search's own sources would be
// read here (the node's records and the copies of the partners asked, in the search's mode and
// filter, decided on the text the reader may see), finds a record; otherwise a word of a record
// the reader may not read, such as an exercise's in the actual mode, would show. Only when the
// person searches with it does it go to partners, as every search does, into their audit logs.
const SuggestTrailer = "knooppunt-suggest-bin"

// Bounds of a suggestion. It runs only after a search that found almost nothing, and gives up
// rather than hold the answer up: at most suggestSearches local searches of at most
// suggestCandidates candidates each, within suggestTime.
const (
	SuggestBelow      = 3
	suggestSearches   = 24
	suggestCandidates = 200
	suggestTime       = 300 * time.Millisecond
)

// offerSuggestion sets SuggestTrailer on the answer to a search with text that found fewer than
// SuggestBelow records, when a misspelt word has a correction the reader's own search finds.
func (s *Service) offerSuggestion(ctx context.Context, f *pb.Filter, found int, peers []config.Peer, own bool) {
	text := s.text(f)
	if text == nil || found >= SuggestBelow {
		return
	}
	if sug := s.suggest(ctx, f, text, peers, own); sug != "" {
		// Over the in-process channel without a caller that asks for trailers, and in tests that
		// call the service directly, there is nowhere to set it: nothing else depends on it.
		_ = grpc.SetTrailer(ctx, metadata.Pairs(SuggestTrailer, sug))
	}
}

// suggest is q with each word that this search finds nothing for here replaced by the nearest
// word of the index (db.NearWords) that it does find something for, when the whole corrected
// query finds a record; "" when there is none. Phrases stay as typed.
func (s *Service) suggest(ctx context.Context, f *pb.Filter, q *record.TextQuery, peers []config.Peer, own bool) string {
	ctx, cancel := context.WithTimeout(ctx, suggestTime)
	defer cancel()
	left := suggestSearches
	finds := func(terms []string) bool {
		if left == 0 {
			return false
		}
		left--
		return s.localHit(ctx, f, &record.TextQuery{Terms: terms}, peers, own)
	}
	terms := slices.Clone(q.Terms)
	changed := false
	for i, t := range q.Terms {
		// One word of the index, long enough to correct.
		if words, _, _ := record.TermWords(t); len(words) != 1 || words[0] != t || utf8.RuneCountInString(t) < db.NearMinRunes {
			continue
		}
		if finds([]string{t}) {
			continue
		}
		near, err := s.c.DB.NearWords(ctx, t)
		if err != nil {
			s.c.Logger.Debug("no search suggestion", "err", err)
			return ""
		}
		for _, w := range near {
			if finds([]string{w}) {
				terms[i], changed = w, true
				break
			}
		}
	}
	if !changed || (len(terms) > 1 && !finds(terms)) {
		return ""
	}
	return (&record.TextQuery{Terms: terms}).String()
}

// localHit reports whether q, under the rest of f, finds a record that a search of this node's
// own records (own) and of its copies of peers' ones would show: decided on the text of each
// record's kind, as Search decides (matches). It reads at most suggestCandidates candidates of
// the index for each source.
func (s *Service) localHit(ctx context.Context, f *pb.Filter, q *record.TextQuery, peers []config.Peer, own bool) bool {
	tf := peerserver.TextFilter(f, q)
	tf.Newest = true // whether, not which first: no ranking
	hit := false
	read := 0
	decide := func(r *pb.Record) (bool, error) {
		read++
		if _, _, ok := s.matches(ctx, q, r); ok {
			hit = true
		}
		return !hit && read < suggestCandidates, nil
	}
	if own {
		if err := s.c.DB.EachTextMatch(ctx, tf, decide); err != nil && !db.TextCut(err) {
			return false
		}
	}
	for _, p := range peers {
		if hit {
			break
		}
		read = 0
		err := s.c.DB.EachForeignTextMatch(ctx, p.TrustDomain, tf, func(r db.Foreign) (bool, error) { return decide(r.Record) })
		if err != nil && !db.TextCut(err) {
			return false
		}
	}
	return hit
}

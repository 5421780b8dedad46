// Package webhook delivers record changes to an organisation's own systems: the check of a
// webhook's URL and of every address it dials, and the Dispatcher that delivers the queue the FSM
// keeps, each delivery signed after the Standard Webhooks convention (package signature, which a
// receiver imports alone).
//
// It never decides what is queued (the FSM does, in the transaction of each change) and never
// sends a record of another organisation to a host of a third: foreign records go to this
// organisation's own systems only.
package webhook

import "github.com/knooppunt/knooppunt/node/webhook/signature"

// Secret is a signing secret (signature.Secret).
type Secret = signature.Secret

// Header names of the Standard Webhooks convention (see package signature).
const (
	HeaderID        = signature.HeaderID
	HeaderTimestamp = signature.HeaderTimestamp
	HeaderSignature = signature.HeaderSignature
)

var (
	// NewSecret makes a new signing secret (signature.NewSecret).
	NewSecret = signature.NewSecret
	// ParseSecret reads a secret as it is shown, whsec_ and base64 (signature.ParseSecret).
	ParseSecret = signature.ParseSecret
)

package db

// MarshalCanonical is the reference canonical encoding of an audit entry (json.Marshal of its
// fields), for the tests outside the package.
var MarshalCanonical = marshalCanonical

package record

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/knooppunt/knooppunt/proto/knooppunt/v1"
)

// JSON is the shape of a record in files and in `-o json` output: the body is a JSON object, not
// base64, and the classification is a word.
type JSON struct {
	ID             string            `json:"id,omitempty"`
	Origin         string            `json:"origin,omitempty"`
	Kind           string            `json:"kind"`
	Crisis         string            `json:"crisis"`
	Region         string            `json:"region"`
	Classification string            `json:"classification"`
	Labels         map[string]string `json:"labels,omitempty"`
	Body           json.RawMessage   `json:"body"`
	Version        int64             `json:"version,omitempty"`
	UpdatedAt      *time.Time        `json:"updated_at,omitempty"`
	ValidUntil     *time.Time        `json:"valid_until,omitempty"`
	Tombstone      bool              `json:"tombstone,omitempty"`
	// Status is actual (omitted), exercise, test or draft; Exercise names an exercise record's
	// exercise.
	Status   string `json:"status,omitempty"`
	Exercise string `json:"exercise,omitempty"`
}

// ToJSON converts a record for output.
func ToJSON(r *pb.Record) JSON {
	j := JSON{
		ID: r.Id, Origin: r.Origin, Kind: r.Kind, Crisis: r.Crisis, Region: r.Region,
		Classification: ClassificationName(r.Classification), Labels: r.Labels,
		Body: json.RawMessage(r.Body), Version: r.Version, Tombstone: r.Tombstone,
		Exercise: r.Exercise,
	}
	if r.Status != pb.Status_ACTUAL {
		j.Status = StatusName(r.Status)
	}
	if len(j.Body) == 0 {
		j.Body = json.RawMessage("{}")
	}
	if r.UpdatedAt != nil {
		t := r.UpdatedAt.AsTime()
		j.UpdatedAt = &t
	}
	if r.ValidUntil != nil {
		t := r.ValidUntil.AsTime()
		j.ValidUntil = &t
	}
	return j
}

// FromJSON converts a record read from a file or a flag. It checks only the shape; CheckPut on
// the node checks the rest.
func FromJSON(j JSON) (*pb.Record, error) {
	cl, err := ParseClassification(j.Classification)
	if err != nil {
		return nil, err
	}
	st, err := ParseStatus(j.Status)
	if err != nil {
		return nil, err
	}
	r := &pb.Record{
		Id: j.ID, Origin: j.Origin, Kind: j.Kind, Crisis: j.Crisis, Region: j.Region,
		Classification: cl, Labels: j.Labels, Body: []byte(j.Body), Version: j.Version,
		Status: st, Exercise: j.Exercise,
	}
	if j.ValidUntil != nil {
		r.ValidUntil = timestamppb.New(*j.ValidUntil)
	}
	return r, nil
}

var classNames = map[string]pb.Classification{
	"public": pb.Classification_PUBLIC, "openbaar": pb.Classification_PUBLIC,
	"internal": pb.Classification_INTERNAL, "intern": pb.Classification_INTERNAL,
	"confidential": pb.Classification_CONFIDENTIAL, "vertrouwelijk": pb.Classification_CONFIDENTIAL,
	"secret": pb.Classification_SECRET, "geheim": pb.Classification_SECRET,
}

// ParseClassification reads a classification word, in English or Dutch.
func ParseClassification(s string) (pb.Classification, error) {
	if s == "" {
		return pb.Classification_CLASSIFICATION_UNSPECIFIED, nil
	}
	if cl, ok := classNames[strings.ToLower(strings.TrimSpace(s))]; ok {
		return cl, nil
	}
	return 0, invalid("classification", "%q is not a classification: use %s", s, validClasses)
}

// ClassificationName is the English word for a classification.
func ClassificationName(c pb.Classification) string {
	switch c {
	case pb.Classification_PUBLIC:
		return "public"
	case pb.Classification_INTERNAL:
		return "internal"
	case pb.Classification_CONFIDENTIAL:
		return "confidential"
	case pb.Classification_SECRET:
		return "secret"
	case pb.Classification_CLASSIFICATION_UNSPECIFIED:
		return ""
	}
	return fmt.Sprintf("unknown(%d)", int32(c))
}

// ParseStatus reads a status word: actual (or empty), exercise, test or draft.
func ParseStatus(s string) (pb.Status, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "actual":
		return pb.Status_ACTUAL, nil
	case "exercise":
		return pb.Status_EXERCISE, nil
	case "test":
		return pb.Status_TEST, nil
	case "draft":
		return pb.Status_DRAFT, nil
	}
	return 0, invalid("status", "%q is not a status: use actual, exercise, test or draft", s)
}

// StatusName is the word for a status.
func StatusName(s pb.Status) string {
	if name, ok := pb.Status_name[int32(s)]; ok {
		return strings.ToLower(name)
	}
	return fmt.Sprintf("unknown(%d)", int32(s))
}

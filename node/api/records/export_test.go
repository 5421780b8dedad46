package records

import "time"

// SetCursorWait sets how long Watch waits for its feed to reach a cursor past its end, until
// the test ends. Set it before the node starts serving.
func SetCursorWait(cleanup func(func()), d time.Duration) {
	was := cursorWait
	cursorWait = d
	cleanup(func() { cursorWait = was })
}

"""Avatar packs: what a consented video leaves for rendering (tracked frames, keyframes, features).

Data flow: :mod:`.track` follows the face through every (or every n-th) frame, :mod:`.features`
turns landmarks into the pose / mouth / eye numbers both selection and rendering compare,
:mod:`.select` picks keyframes covering pose × mouth shape × eye state, :mod:`.store` writes
and reads the pack atomically, and :mod:`.build` runs the whole clone with its checks.
"""

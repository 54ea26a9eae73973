"""medaka_heart: cardiac phenotypes from microscope videos of fish embryo hearts."""

import os as _os

__version__ = "0.10.1"

# FFmpeg's own messages ("overread 8", ...) are not for the user's terminal. OpenCV reads
# these when it first decodes; set here, before any module imports cv2, and inherited by
# worker processes. A user's own setting wins.
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
_os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

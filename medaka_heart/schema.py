"""Column names of the result tables: the contract other tools read. Keep them."""

FRAME_COLUMNS = (
    "frame",  # 0-based frame index
    "time_s",  # frame / fps
    "area_um2",
    "major_um",  # full major axis length of the moment ellipse
    "minor_um",  # full minor axis length
    "volume_pl",  # prolate spheroid pi/6 * minor^2 * major, 1 pl = 1000 um^3
    "equiv_diameter_um",
    "orientation_rad",  # skimage convention: angle between row axis and major axis
    "centroid_x_um",
    "centroid_y_um",
    "solidity",
    "n_components",  # connected components in the raw mask
)

BEAT_COLUMNS = (
    "beat",  # 0-based beat index
    "ed_frame",  # end-diastolic frame (largest ventricle), 0-based
    "es_frame",  # end-systolic frame that follows it (smallest ventricle)
    "ed_time_s",  # sub-frame refined times
    "es_time_s",
    "rr_s",  # interval to the next beat (ES to ES where both are timed, else ED to ED), NaN last
    "hr_bpm",  # 60 / rr_s
    "edv_pl",
    "esv_pl",
    "sv_pl",
    "ef_pct",  # 100 * (edv - esv) / edv
    "fs_minor_pct",
    "fs_major_pct",
    "fac_pct",  # fractional area change
    "ed_area_um2",
    "es_area_um2",
    "ed_major_um",
    "es_major_um",
    "ed_minor_um",
    "es_minor_um",
)

USABLE_STATUSES = ("ok", "reused", "skipped")  # rows with results; "skipped": older runs' name
REUSED = "reused"

RHYTHM_BEAT_COLUMNS = (  # beats.csv of an analysis (not of a truth): the fused beat train
    "beat_time_s",  # the beat's time on the end-systolic reference, s (what rr_s is measured on)
    "hr_source",  # which signal timed the beat: both | segmentation | intensity
)

SUMMARY_COLUMNS = (
    "video",
    "status",  # ok | failed | reused (complete results of an earlier run)
    "error",
    "n_frames",  # frames decoded and analysed
    "n_frames_declared",  # frames the container declares (an estimate for many codecs)
    "fps",
    "fps_source",
    "pixel_size_um",
    "pixel_size_source",
    "n_beats",
    "hr_source",  # what the beat train rests on: both | segmentation | intensity
    "hr_bpm",  # 60 / mean interval of the fused beat train
    "hr_bpm_std",
    "hr_bpm_median",
    "hr_bpm_q1",
    "hr_bpm_q3",
    "sdnn_ms",
    "rmssd_ms",
    "ef_pct",
    "ef_pct_std",
    "ef_pct_median",
    "ef_pct_q1",
    "ef_pct_q3",
    "fs_minor_pct",
    "fs_major_pct",
    "fac_pct",
    "edv_pl",
    "esv_pl",
    "sv_pl",
    "hr_bpm_segmentation",  # 60 / mean interval of the masks' own beats (comparison)
    "hr_bpm_segmentation_median",  # the same from their median interval
    "hr_bpm_intensity",  # model-free heart rate from pixel intensities alone (comparison)
    "intensity_periodicity",  # 0-1, how periodic that intensity signal is
    "qc_pass",  # qc_rhythm_pass and qc_dimensions_pass (see qc.py; findings do not count)
    "qc_rhythm_pass",  # no rhythm flag: heart rate, intervals, HRV can be trusted
    "qc_dimensions_pass",  # no dimensions flag: volumes, EF, FS can be trusted
    "qc_flags",  # ;-separated QC flags: reasons to look at the video before trusting it
    "qc_findings",  # ;-separated findings (irregular_rhythm): biology worth a look
    "qc_empty_fraction",  # frames with an empty ventricle mask, 0-1
    "qc_confidence",  # median per-frame segmentation confidence, 0-1 (empty with --masks)
    "qc_periodicity",  # median correlation of consecutive beats of the volume signal, <= 1
    "qc_hr_difference_pct",  # 100 |hr_bpm_segmentation_median - hr_bpm_median| / hr_bpm_median
    "qc_rhythm_periodicity",  # beat-to-beat repeatability of the signal the train rests on
    "qc_measured_beats",  # beats with an ejection fraction
    "qc_missing_frames",  # frames missing from a numbered folder, rebuilt from neighbours
    "qc_rr_cv_pct",  # coefficient of variation of the RR intervals, %
    "qc_skipped_beats",  # RR intervals longer than [qc] skipped_beat_ratio x median
    "qc_motion_diameters",  # centroid travel (95th percentile) in ventricle diameters
)

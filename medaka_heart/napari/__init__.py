"""napari plugin (the ``napari`` extra): look at an analysis result, correct its masks, adapt.

The npe2 manifest ``napari.yaml`` names a reader (`reader.get_reader`: an ``analyze
--save-masks`` result folder -> the video, its masks as Labels, the ED/ES frames as Points)
and a dock widget (`widget.CorrectionWidget`: save corrected frames for ``adapt``, run
``adapt`` and re-analyse the video with the adapted model). The steps behind the widget are
plain functions in `loop` (no Qt). Only `widget` imports napari, magicgui and Qt; nothing
outside this subpackage imports it.
"""

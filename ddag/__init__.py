"""ddag: DDAG visible-infrared person re-identification on MindSpore 2.x."""

__version__ = "0.1.0"

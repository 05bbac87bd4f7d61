"""ReID toolkit for the person re-identification assignment (see helpers.py for the map)."""

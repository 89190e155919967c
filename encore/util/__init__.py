"""Small utilities: :mod:`encore.util.human_date` describes dates in words."""

"""The Panel/Bokeh dashboard.

Not built yet: this package exists so the distribution's layout is final.
"""

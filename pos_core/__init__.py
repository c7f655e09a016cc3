"""Plain-Python engines of point_of_sale_api.

Everything here is importable and testable without Odoo: the models bind these
rules to records, the controllers call the models. Importing this package must
never import ``odoo`` (a plain-tier test checks it).
"""

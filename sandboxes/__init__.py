"""Local stand-ins for the vendors' APIs (CiviCRM APIv4, Salesforce REST and Bulk 2.0).

The demo and the tests talk to these over loopback. They are written from the vendors'
documentation and source, refuse what the vendors refuse and model their quiet failures;
they live apart from ``connectors/`` so that no product code can lean on them.
"""

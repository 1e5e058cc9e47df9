"""A Content-Security-Policy header on every response (Django 5.2 has none built in).

The default policy restricts what needs no change to the pages: no plugins, no <base> rewriting,
forms post only to this site, no framing. It does not restrict scripts: the chart pages embed
plotly's inline <script> (testing_app/charts.py), which a script-src policy would block until
the charts are drawn from json_script data by a static file.
"""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response.headers:
            response.headers["Content-Security-Policy"] = policy
        return response

"""API URLs under /api/: the OpenAPI schema and the read-only resources."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.reverse import reverse
from rest_framework.routers import APIRootView
from rest_framework.routers import DefaultRouter

from testing_app.api import views

app_name = "api"


class ApiRootView(APIRootView):
    """Every endpoint of the API: the router's resources, the matrix and the OpenAPI schema
    (the router alone lists only its own resources)."""

    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        for name in ("matrix", "schema"):
            response.data[name] = reverse(
                f"api:{name}", request=request, format=kwargs.get("format")
            )
        return response


router = DefaultRouter()
router.APIRootView = ApiRootView
router.register("packages", views.PackageViewSet, basename="package")
router.register("builds", views.BuildViewSet, basename="build")
router.register("runs", views.RunViewSet, basename="run")
router.register("jobs", views.JobViewSet, basename="job")
router.register("hosts", views.HostViewSet, basename="host")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("matrix/", views.MatrixView.as_view(), name="matrix"),
    *router.urls,
]

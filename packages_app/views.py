"""Catalog pages: home counts, package list, package detail."""

from django.http import HttpResponse


def home(request):
    return HttpResponse("")


def package_list(request):
    return HttpResponse("")


def package_detail(request, name):
    return HttpResponse("")

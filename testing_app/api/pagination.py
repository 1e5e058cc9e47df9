"""API pagination: numbered pages (with a total) for catalog-sized lists, cursors for jobs."""

from rest_framework import pagination

MAX_PAGE_SIZE = 200


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class JobCursorPagination(pagination.CursorPagination):
    """Jobs number in the millions: a cursor on the primary key needs no COUNT(*) over them."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

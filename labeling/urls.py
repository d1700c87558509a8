from django.urls import path

from labeling import api

urlpatterns = [
    path("stations/<slug:slug>/tasks/claim/", api.TaskClaimNext.as_view(), name="labeling-task-claim"),
    path("stations/<slug:slug>/reviews/claim/", api.ReviewClaimNext.as_view(), name="labeling-review-claim"),
    path("stations/<slug:slug>/figures/", api.LabelQueueFigures.as_view(), name="labeling-figures"),
    path("tasks/<int:pk>/release/", api.TaskRelease.as_view(), name="labeling-task-release"),
    path("tasks/<int:pk>/submissions/", api.TaskSubmit.as_view(), name="labeling-task-submit"),
    path("submissions/<int:pk>/release/", api.ReviewRelease.as_view(), name="labeling-review-release"),
    path("submissions/<int:pk>/review/", api.Review.as_view(), name="labeling-review"),
    path("items/<int:pk>/image", api.ItemImage.as_view(), name="labeling-item-image"),
    path("annotations/<int:pk>/mask", api.AnnotationMask.as_view(), name="labeling-annotation-mask"),
]

// Package v1alpha1 contains the API of the data import operator: S3Source, which points
// at a bucket prefix holding conversation files, and IngestionQuota, which bounds what
// the sources of a namespace may ingest each day.
// +kubebuilder:object:generate=true
// +groupName=dataimport.avon.ai
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of these objects.
	GroupVersion = schema.GroupVersion{Group: "dataimport.avon.ai", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this group version.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
